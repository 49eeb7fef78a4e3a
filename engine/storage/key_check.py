"""Every node of a cluster must hold the same secret key (``CALLBACK_ENGINE_SECRET_KEY``): each
opens what another sealed (push credentials) and derives the same capability keys. The database
never holds the key, only a keyed digest of a fixed text that the first node stores; a node whose
digest differs refuses to start instead of failing later on a value it cannot open."""

from __future__ import annotations

import hmac
import time

from .schema import engine_values
from .store import Store
from .unit import TableWrite, UnitOfWork

VALUE = "cluster.secret_key_check"
_FIRST_WINS = TableWrite(engine_values, keep_existing=True)


class KeyMismatch(RuntimeError):
    """This node's secret key is not the cluster's."""


async def check_secret_key(store: Store, check: str) -> None:
    """Store ``check`` (a digest the secret key derives, e.g. ``SecretBox.derive(...).hex()``) if no
    node did yet, and raise ``KeyMismatch`` unless it is the one stored. Two first nodes racing
    both keep the one that was inserted first."""
    unit = UnitOfWork()
    unit.add(_FIRST_WINS, [{"key": VALUE, "value": check, "updated_at": time.time()}])
    await store.write(unit)
    stored = await store.get_value(VALUE)
    if stored is None or not hmac.compare_digest(stored, check):
        raise KeyMismatch("this node's secret key differs from the one the cluster's other nodes use: give every "
                          "node the same CALLBACK_ENGINE_SECRET_KEY (or ..._FILE)")
