"""The callback limits of a cluster: counted over every node's records, not this node's alone.

A node holds only the callbacks of its partitions in memory, so the in-memory indexes of the
callback service (``RecordIndex``, ``TimeIndex``) would let every node fill a time slot or a queue
on its own. In a cluster the counts come from the database over its indexes (``(service, state)``
and ``(service, desired_time)``), with this node's changes not yet committed counted from memory
instead of their stored rows. Another node's uncommitted changes are not seen: across nodes the
window is one batch (a limit may be passed by as many creates as land in it; docs/DEPLOY.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..storage import Store
from . import rows as callback_rows
from .records import parse_time
from .vocabulary import CallbackState

Record = dict[str, Any]


class SharedCounts:
    def __init__(self, store: Store, unwritten: Callable[[], Iterable[Record]]):
        """``unwritten``: this node's records changed since their last commit (or in the batch
        being written): what the database does not hold yet."""
        self.store = store
        self.unwritten = unwritten

    def _pending(self) -> dict[str, Record]:
        return {r["_id"]: r for r in self.unwritten()}

    async def waiting(self, service: str, state: str) -> int:
        """Records of ``service`` in ``state`` (a queue limit)."""
        pending = self._pending()
        stored = await callback_rows.count_in_state(self.store, service, state, list(pending))
        return stored + sum(1 for r in pending.values()
                            if r["_service_name"] == service and r["_callback_state"] == state)

    async def scheduled_per_bucket(self, service: str, start: float, end: float, size: float,
                                   exclude: str | None = None) -> dict[int, int]:
        """SCHEDULED records of ``service`` wanted in ``[start, end)`` per bucket of ``size``
        seconds (bucket number ``desired // size`` -> count), not counting ``exclude``."""
        pending = self._pending()
        skip = list(pending) + ([exclude] if exclude is not None and exclude not in pending else [])
        counts = await callback_rows.scheduled_per_bucket(self.store, service, start, end, size, skip)
        for cid, record in pending.items():
            if (cid == exclude or record["_service_name"] != service
                    or record["_callback_state"] != CallbackState.SCHEDULED):
                continue
            desired = parse_time(record["_desired_time"], "_desired_time")
            if start <= desired < end:
                bucket = int(desired // size)
                counts[bucket] = counts.get(bucket, 0) + 1
        return counts

    async def scheduled_between(self, service: str, start: float, end: float, exclude: str | None = None) -> int:
        """SCHEDULED records of ``service`` wanted in ``[start, end)`` (a capacity bucket)."""
        counts = await self.scheduled_per_bucket(service, start, end, end - start, exclude)
        return sum(counts.values())
