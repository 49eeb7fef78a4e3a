"""Live callback records grouped by what the service's checks and push ask of them.

A check (the queue size of a service, the callbacks scheduled in a time bucket, the push-enabled
callbacks waiting in a queue) must cost the same with 50 or 50,000 live callbacks, so it cannot
scan the records. An index derives a record's key from the record itself and is told of every
change (``track``); it compares with the key it holds for that record, so telling it twice, or of
a change that moved nothing, is harmless, and a recount from the records always gives the same.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Hashable, Iterator
from typing import Any

Record = dict[str, Any]


class RecordIndex:
    """Record ids grouped by ``key_of(record)``; a record whose key is None is in no group."""

    __slots__ = ("_groups", "_key_of", "_keys")

    def __init__(self, key_of: Callable[[Record], Hashable | None]) -> None:
        self._key_of = key_of
        self._keys: dict[str, Hashable] = {}
        self._groups: dict[Hashable, dict[str, None]] = {}  # insertion-ordered sets

    def track(self, record: Record) -> None:
        """The record as it is now (created, changed, loaded at start-up)."""
        cid = record["_id"]
        new = self._key_of(record)
        old = self._keys.get(cid)
        if old == new:
            return
        if old is not None:
            self._leave(cid, old)
        if new is not None:
            self._keys[cid] = new
            self._groups.setdefault(new, {})[cid] = None

    def forget(self, cid: str) -> None:
        """The record left the service's memory."""
        old = self._keys.get(cid)
        if old is not None:
            self._leave(cid, old)

    def count(self, key: Hashable) -> int:
        group = self._groups.get(key)
        return len(group) if group else 0

    def ids(self, key: Hashable) -> list[str]:
        """The ids in group ``key`` (a copy: tracking while walking it is safe)."""
        group = self._groups.get(key)
        return list(group) if group else []

    def counts(self) -> dict[Hashable, int]:
        return {key: len(group) for key, group in self._groups.items()}

    def _leave(self, cid: str, key: Hashable) -> None:
        del self._keys[cid]
        group = self._groups[key]
        del group[cid]
        if not group:
            del self._groups[key]


class TimeIndex:
    """Record ids by a key and a time (``place(record)`` gives both, or None): how many fall in
    a time range of a key is two binary searches, whatever the range's size (capacity buckets
    of any width, availability over many slots)."""

    __slots__ = ("_place", "_places", "_times")

    def __init__(self, place: Callable[[Record], tuple[Hashable, float] | None]) -> None:
        self._place = place
        self._places: dict[str, tuple[Hashable, float]] = {}
        self._times: dict[Hashable, list[tuple[float, str]]] = {}  # sorted per key

    def track(self, record: Record) -> None:
        cid = record["_id"]
        new = self._place(record)
        old = self._places.get(cid)
        if old == new:
            return
        if old is not None:
            self._leave(cid, old)
        if new is not None:
            self._places[cid] = new
            insort(self._times.setdefault(new[0], []), (new[1], cid))

    def forget(self, cid: str) -> None:
        old = self._places.get(cid)
        if old is not None:
            self._leave(cid, old)

    def count_between(self, key: Hashable, start: float, end: float, exclude: str | None = None) -> int:
        """Records of ``key`` with a time in ``[start, end)``, not counting ``exclude``."""
        times = self._times.get(key)
        if not times:
            return 0
        found = bisect_left(times, (end, "")) - bisect_left(times, (start, ""))
        if exclude is not None:
            place = self._places.get(exclude)
            if place is not None and place[0] == key and start <= place[1] < end:
                found -= 1
        return found

    def places(self) -> Iterator[tuple[str, tuple[Hashable, float]]]:
        return iter(self._places.items())

    def _leave(self, cid: str, place: tuple[Hashable, float]) -> None:
        del self._places[cid]
        times = self._times[place[0]]
        del times[bisect_left(times, (place[1], cid))]
        if not times:
            del self._times[place[0]]
