"""Every domain's storage, assembled: the one place that knows which domains have tables.

Storage sits below the domains and cannot import them, so the composition root opens the store
here (``open_store``: every domain's migrations and table writes) and runs retention here
(``purge``: every domain's purger, in one transaction).
"""

from __future__ import annotations

from .callbacks import rows as callback_rows
from .notifications import rows as notification_rows
from .sessions import rows as session_rows
from .storage import Purger, Schema, Store

SCHEMAS: tuple[Schema, ...] = (session_rows.SCHEMA, callback_rows.SCHEMA, notification_rows.SCHEMA)
PURGERS: tuple[Purger, ...] = (session_rows.purge, callback_rows.purge, notification_rows.purge)


async def open_store(url: str) -> Store:
    """The store with every domain's tables migrated."""
    return await Store.open(url, SCHEMAS)


async def purge(store: Store, cutoff: float) -> dict[str, int]:
    """Forget what ended before ``cutoff`` (epoch seconds), each domain its own tables: ended
    sessions, completed callbacks with their events, dead letters; counts by kind."""
    return await store.purge(cutoff, PURGERS)
