"""Expiry times in a heap, so finding what expired costs the expired ones, not a scan of all.

Removing an entry early (an unsubscribe, a callback that ended) only forgets it; its heap slot
is skipped when it surfaces. When such stale slots outnumber the live ones the heap is rebuilt
from the live ones, so memory stays proportional to what is live and each removal stays O(1)
amortised.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

#: Rebuild only past this many slots: small heaps are not worth it.
COMPACT_FLOOR = 64


@dataclass
class ExpiryHeap:
    """Keys with an expiry time; ``pop_expired(now)`` hands back those due (``expires_at <= now``)."""

    _heap: list[tuple[float, int, str]] = field(default_factory=list)
    _live: dict[str, tuple[float, int]] = field(default_factory=dict)  # key -> its current slot
    _counter: itertools.count = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self._live)

    def push(self, key: str, expires_at: float) -> None:
        """Track ``key`` (a key pushed again keeps only its latest time)."""
        slot = (expires_at, next(self._counter))
        self._live[key] = slot
        heapq.heappush(self._heap, (*slot, key))

    def discard(self, key: str) -> None:
        if self._live.pop(key, None) is not None and len(self._heap) > max(COMPACT_FLOOR, 2 * len(self._live)):
            self._heap = [(at, n, k) for k, (at, n) in self._live.items()]
            heapq.heapify(self._heap)

    def due(self, now: float) -> bool:
        """Whether ``pop_expired(now)`` may find anything: the earliest slot (live or stale) is
        due. Asked at every publish, nearly always to learn that nothing is, without the list
        ``pop_expired`` makes."""
        return bool(self._heap) and self._heap[0][0] <= now

    def pop_expired(self, now: float) -> list[str]:
        """Keys whose time is ``<= now``, earliest first; they are no longer tracked."""
        due: list[str] = []
        heap, live = self._heap, self._live
        while heap and heap[0][0] <= now:
            at, n, key = heapq.heappop(heap)
            if live.get(key) == (at, n):
                del live[key]
                due.append(key)
        return due
