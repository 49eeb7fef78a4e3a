"""One-shot timers by kind and argument on the engine clock, for the callback service's schedule.

Every due time (a scheduled callback's submit, its TTL, its purge) is derived from a stored
record and armed again after a restart, so a timer needs no persistence of its own, and a due
time already past fires at once, late rather than never. Tens of thousands of callbacks wait at
once, each with a timer: one ``loop.call_later`` handle per timer (with its name, context and
heap slot) cost ~440 bytes of each waiting callback, so all timers share one heap of small
``(due, kind, argument)`` entries and one loop handle armed for the earliest of them.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterator
from typing import Protocol

from ..scxml.clock import Timer

log = logging.getLogger("engine.callbacks.timers")

#: Timers fired per loop turn at most: a restart with thousands overdue must not hold the loop.
BURST = 500
#: Real seconds a wake-up may come early (loop and wall clocks are read apart) and still fire.
EARLY = 0.001
#: Cancelled entries left in the heap before it is rebuilt without them (and more than live ones).
MIN_STALE = 256

Entry = tuple[float, str, str]  # (due, kind, argument): compared in C, never a callable


class TimerClock(Protocol):
    """What the timers need of the engine clock."""

    scale: float

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: object) -> Timer: ...


class Timers:
    """Timers named by a kind (``ttl``, ``submit``...) and an argument (a callback id); each kind
    calls its function (``on``) with the argument. Arming a name again replaces its timer,
    cancelling drops it. ``"kind:argument" in timers`` tells whether one is armed.

    A cancelled or replaced timer's entry stays in the heap until it comes up or the heap is
    rebuilt (when such entries outnumber the live ones); an entry is live while the due time
    its kind maps the argument to is the very float object in the entry."""

    __slots__ = ("_armed", "_clock", "_fire", "_heap", "_stale", "_wake", "_wake_at")

    def __init__(self, clock: TimerClock) -> None:
        self._clock = clock
        self._fire: dict[str, Callable[[str], None]] = {}
        self._armed: dict[str, dict[str, float]] = {}  # kind -> argument -> due (the entry's float)
        self._heap: list[Entry] = []
        self._stale = 0
        self._wake: Timer | None = None
        self._wake_at = 0.0

    def on(self, kind: str, callback: Callable[[str], None]) -> None:
        """What the timers of ``kind`` call, with their argument."""
        self._fire[kind] = callback
        self._armed.setdefault(kind, {})

    def __len__(self) -> int:
        return sum(len(armed) for armed in self._armed.values())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        kind, _, arg = name.partition(":")
        armed = self._armed.get(kind)
        return armed is not None and arg in armed

    def names(self) -> Iterator[str]:
        """``kind:argument`` of every armed timer."""
        for kind, armed in self._armed.items():
            for arg in armed:
                yield f"{kind}:{arg}"

    def arm(self, kind: str, arg: str, due: float) -> None:
        """Call ``kind``'s function with ``arg`` at clock time ``due`` (at once if past),
        replacing the timer ``kind``/``arg`` if one was armed."""
        armed = self._armed[kind]  # KeyError: a kind nobody said what to call for
        due = float(due)
        replaced = armed.get(arg) is not None
        armed[arg] = due
        if replaced:
            self._dropped()
        heapq.heappush(self._heap, (due, kind, arg))
        if self._wake is None or due < self._wake_at:
            self._schedule(due)

    def cancel(self, kind: str, arg: str) -> None:
        """Drop the timer ``kind``/``arg``; nothing happens if it already fired or never was armed."""
        armed = self._armed.get(kind)
        if armed is not None and armed.pop(arg, None) is not None:
            self._dropped()

    def cancel_all(self) -> None:
        for armed in self._armed.values():
            armed.clear()
        self._heap.clear()
        self._stale = 0
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None

    def _dropped(self) -> None:
        """An entry of the heap went stale: rebuild the heap once most of it is."""
        self._stale += 1
        if self._stale > MIN_STALE and self._stale * 2 > len(self._heap):
            self._compact()

    def _live(self, entry: Entry) -> bool:
        return self._armed[entry[1]].get(entry[2]) is entry[0]

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._live(entry)]
        heapq.heapify(self._heap)
        self._stale = 0

    def _schedule(self, due: float) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._wake_at = due
        self._wake = self._clock.call_at(due, self._run)

    def _run(self) -> None:
        self._wake = None
        try:
            self._fire_due()
        finally:  # re-armed even when a fire raised past ``Exception`` (the rest fire on a later turn)
            self._rearm()

    def _fire_due(self) -> None:
        heap = self._heap
        limit = self._clock.now() + EARLY * self._clock.scale
        fired = 0
        while heap and heap[0][0] <= limit and fired < BURST:
            entry = heapq.heappop(heap)
            due, kind, arg = entry
            armed = self._armed[kind]
            if armed.get(arg) is not due:
                self._stale = max(0, self._stale - 1)
                continue
            del armed[arg]
            fired += 1
            try:
                self._fire[kind](arg)
            except Exception:  # one failing timer must not stop the others
                log.exception("timer %s:%s failed", kind, arg)

    def _rearm(self) -> None:
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
            self._stale = max(0, self._stale - 1)
        if heap and (self._wake is None or heap[0][0] < self._wake_at):
            self._schedule(heap[0][0])
