"""Who holds each partition of a cluster, and how to reach that node (issue 14).

A request that needs the holder's memory (cancel a callback, terminate a session) is forwarded to
the node holding its partition (``engine/api/cluster.py``). Asking the database for every such
request would cost a query each; the holders change only on a claim or a release, both announced
on ``cbe_partitions``. So one query reads the holder of all 64 partitions at once, and the answer
is kept until such a notification, or until a partition is asked for that has no live holder in
it (a node that died says nothing: its lease simply runs out), at most every ``min_refresh``
seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from .errors import StorageUnavailable
from .membership import NOW
from .store import Store

log = logging.getLogger("engine.cluster")

_OWNERS = f"""
SELECT p.id, n.name, n.internal_url FROM cluster_partitions p
JOIN cluster_nodes n ON n.name = p.owner AND n.incarnation = p.owner_incarnation
WHERE n.expires_at > {NOW}
"""


@dataclass(frozen=True)
class Owner:
    """A live node holding a partition: its name and its ``internal_url`` (empty when unknown)."""

    node: str
    url: str


class Owners:
    def __init__(self, store: Store, *, min_refresh: float = 0.25):
        self.store = store
        self.min_refresh = min_refresh
        self.loads = 0  # queries made so far (for the tests: the cache is used)
        self._owners: dict[int, Owner] = {}
        self._loaded_at: float | None = None  # monotonic; None: never loaded, or told it changed
        self._changes = 0  # notifications so far: one arriving during a read makes that read stale
        self._lock = asyncio.Lock()

    async def owner_of(self, partition: int) -> Owner | None:
        """The live holder of ``partition``, or None when no live node holds it (now);
        ``StorageUnavailable`` when the database cannot be read."""
        if self._loaded_at is None or (
                partition not in self._owners and time.monotonic() - self._loaded_at >= self.min_refresh):
            await self.refresh()
        return self._owners.get(partition)

    def invalidate(self, _payload: str = "") -> None:
        """The holders changed (a claim, a release, a node that stopped answering): read them again
        on the next question. Subscribed to ``cbe_partitions``."""
        self._changes += 1
        self._loaded_at = None

    async def refresh(self) -> None:
        """Read every partition's live holder (one query; callers waiting meanwhile share it).
        ``StorageUnavailable`` when the database cannot be read."""
        asked = time.monotonic()
        async with self._lock:
            if self._loaded_at is not None and self._loaded_at >= asked:
                return  # read by another caller while this one waited
            started, changes = time.monotonic(), self._changes
            try:
                async with self.store.engine.connect() as conn:
                    rows = (await conn.exec_driver_sql(_OWNERS)).all()
            except (SQLAlchemyError, OSError) as e:
                raise StorageUnavailable(f"cannot read who holds the partitions: {type(e).__name__}") from e
            self._owners = {part: Owner(name, url or "") for part, name, url in rows}
            self._loaded_at = started if changes == self._changes else None
            self.loads += 1
        log.debug("cluster: %d partitions have a live holder", len(self._owners))

