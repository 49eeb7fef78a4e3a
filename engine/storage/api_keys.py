"""A cluster's API keys (``api_keys``, migration 8): one table every node reads and any node (or
``run_engine.py keys``) changes. A change runs under one lock for the whole table, on the rows as
they are now, and is announced on ``cbe_config`` (kind ``api_keys``) in its own transaction: the
other nodes read the table again as soon as it has committed. Rows are plain dicts (the columns);
``engine.keys`` turns them into keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select

from .config_docs import CHANNEL, api_keys, notice
from .shared_config import SharedConfig

T = TypeVar("T")
KIND = "api_keys"
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('cbe:api_keys'))"
_NOTIFY = "SELECT pg_notify($1, $2)"
_UPSERT = """
INSERT INTO api_keys (name, role, sha256, prefix, created, rotated, services) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE SET role = excluded.role, sha256 = excluded.sha256, prefix = excluded.prefix,
    created = excluded.created, rotated = excluded.rotated, services = excluded.services
"""
_COLUMNS = ("name", "role", "sha256", "prefix", "created", "rotated", "services")


def _from_table(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    found["services"] = json.loads(found["services"]) if found["services"] is not None else None
    return found


def _to_table(row: dict[str, Any]) -> tuple[Any, ...]:
    services = row.get("services")
    values = {**row, "services": json.dumps(list(services)) if services is not None else None}
    return tuple(values.get(c) for c in _COLUMNS)


class KeyTable:
    """The port ``engine.keys.KeyStore`` uses in a cluster."""

    def __init__(self, shared: SharedConfig):
        self.shared = shared

    async def read(self) -> list[dict[str, Any]]:
        async with self.shared.store.engine.connect() as conn:
            return [_from_table(r) for r in await conn.execute(select(api_keys).order_by(api_keys.c.created))]

    async def change(self, edit: Callable[[list[dict[str, Any]]], tuple[T, list[dict[str, Any]]]]) -> T:
        """``edit(rows)`` -> (its result, the rows it leaves), applied and announced in one
        transaction under the table's lock; ``StorageUnavailable`` when the database fails (and
        nothing changed). What ``edit`` raises goes to the caller, and nothing is written."""

        async def write() -> T:
            async with self.shared.store.engine.begin() as conn:
                await conn.exec_driver_sql(_LOCK)
                before = {r["name"]: r for r in
                          [_from_table(r) for r in await conn.execute(select(api_keys))]}
                result, after = edit(list(before.values()))
                kept = {r["name"] for r in after}
                gone = [(name,) for name in before if name not in kept]
                changed = [_to_table(r) for r in after if before.get(r["name"]) != r]
                if gone:
                    await conn.exec_driver_sql("DELETE FROM api_keys WHERE name = $1", gone)
                if changed:
                    await conn.exec_driver_sql(_UPSERT, changed)
                if gone or changed:
                    await conn.exec_driver_sql(_NOTIFY, (CHANNEL, notice(KIND, "", 0)))
                return result

        return await self.shared.guarded("the API keys", write())
