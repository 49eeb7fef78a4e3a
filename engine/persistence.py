"""Every domain's storage, assembled: the one place that knows which domains have tables.

Storage sits below the domains and cannot import them, so the composition root opens the store
here (``open_store``: every domain's migrations and table writes) and runs retention here
(``purge``: every domain's purger, in one transaction; in a cluster, on one node at a time).
"""

from __future__ import annotations

from .callbacks import rows as callback_rows
from .notifications import rows as notification_rows
from .sessions import rows as session_rows
from .storage import Purger, Schema, Store

#: The advisory lock of a cluster's retention ("CBE1"): held by the one node purging.
RETENTION_LOCK = 0x43424531
_TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"

SCHEMAS: tuple[Schema, ...] = (session_rows.SCHEMA, callback_rows.SCHEMA, notification_rows.SCHEMA)
PURGERS: tuple[Purger, ...] = (session_rows.purge, callback_rows.purge, notification_rows.purge)


async def open_store(url: str) -> Store:
    """The store with every domain's tables migrated."""
    return await Store.open(url, SCHEMAS)


async def purge(store: Store, cutoff: float, *, shared: bool = False) -> dict[str, int]:
    """Forget what ended before ``cutoff`` (epoch seconds), each domain its own tables: ended
    sessions, completed callbacks with their events, dead letters; counts by kind.

    ``shared`` (the nodes of a cluster each run it hourly): in a transaction holding the
    retention's advisory lock, which one node gets and the others skip (an empty count), so the
    same rows are not deleted by every node at once."""
    if not shared:
        return await store.purge(cutoff, PURGERS)
    counts: dict[str, int] = {}
    async with store.engine.begin() as conn:
        if not (await conn.exec_driver_sql(_TRY_LOCK, (RETENTION_LOCK,))).scalar():
            return counts  # another node is purging now
        for purger in PURGERS:
            counts.update(await purger(conn, cutoff))
    return counts
