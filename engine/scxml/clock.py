"""The one clock every engine timer reads (W3C delays now; scheduling and retries later).

Due times are absolute wall-clock seconds so that they can be stored and re-armed after a
restart. A scaled clock lets the simulator run a day of traffic in seconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable
from typing import Any


class Timer:
    """What ``call_at`` and ``call_later`` give back: ``cancel()`` keeps the callback from running."""

    __slots__ = ("_args", "_callback", "_clock")

    def __init__(self, clock: Clock, callback: Callable[..., Any], args: tuple[Any, ...]):
        self._clock, self._callback, self._args = clock, callback, args

    def cancel(self) -> None:
        if self._callback is not None:
            self._callback, self._args = None, ()
            self._clock._cancelled_one()

    def cancelled(self) -> bool:
        return self._callback is None


class Clock:
    """Wall-clock time with asyncio timers: a waiting timer costs no CPU."""

    scale: float = 1.0
    """How many seconds of this clock pass in one real second (timeouts are divided by it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop
        # Every timer of this clock waits in this heap, and one asyncio timer is armed for the
        # earliest: a TimerHandle per timer cost its creation and asyncio's Python-level heap
        # comparisons (the simulator alone arms four per callback).
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = math.inf
        self._cancelled = 0
        # The first timer set while the wake was already taken for the loop's current turn (not
        # to run in it: asyncio runs a timer set during a turn on a later one), else None.
        self._barrier: int | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback`` at absolute time ``when`` (at once if it is already due)."""
        return self._after(max(0.0, when - self.now()), callback, args)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback`` ``delay`` seconds of this clock from now: ``call_at(now() + delay)``
        without reading the time twice (the simulator's calls, rings and treatments)."""
        return self._after(max(0.0, delay), callback, args)

    def _after(self, seconds: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> Timer:
        """``callback(*args)`` in ``seconds`` real seconds; timers due together run in the order set."""
        loop = self.loop
        when = loop.time() + seconds
        seq = next(self._order)
        timer = Timer(self, callback, args)
        if when < self._wake_at:
            self._arm(loop, when)  # first: if the loop refuses, nothing here has changed
        elif (wake := self._wake) is not None and not wake._scheduled and self._barrier is None:  # type: ignore[attr-defined]
            # The wake left asyncio's heap for this turn's ready callbacks: it runs in this turn,
            # and this timer (set in this turn) must wait for a later one, as asyncio's would.
            self._barrier = seq
        heapq.heappush(self._heap, (when, seq, timer))
        return timer

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        wake = loop.call_at(when, self._run_due)
        if self._wake is not None:
            self._wake.cancel()
        # The new wake runs on a later turn, with every timer set until then.
        self._wake, self._wake_at, self._barrier = wake, when, None

    def _run_due(self) -> None:
        """Run the timers due now (as asyncio would, within its clock's resolution), each on its
        own: one that raises is reported to the loop's exception handler, as a callback is."""
        loop = self.loop
        barrier = self._barrier
        self._wake, self._wake_at, self._barrier = None, math.inf, None
        end = loop.time() + loop._clock_resolution  # type: ignore[attr-defined]
        heap = self._heap
        due = []
        if barrier is None:
            while heap and heap[0][0] <= end:
                due.append(heapq.heappop(heap))
        else:  # a timer set during this turn waits for the next, and so do those due after it
            while heap and heap[0][0] <= end and heap[0][1] < barrier:
                due.append(heapq.heappop(heap))
        if heap:
            self._arm(loop, heap[0][0])
        for index, entry in enumerate(due):
            timer = entry[2]
            callback = timer._callback
            if callback is None:
                self._cancelled = max(0, self._cancelled - 1)
                continue
            args = timer._args
            timer._callback, timer._args = None, ()  # run: a cancel now changes nothing
            try:
                callback(*args)
            except (SystemExit, KeyboardInterrupt):
                self._put_back(loop, due[index + 1 :])  # asyncio leaves its ready handles ready
                raise
            except BaseException as exc:
                loop.call_exception_handler({"message": f"Exception in callback {callback!r}", "exception": exc})

    def _put_back(self, loop: asyncio.AbstractEventLoop, entries: list[tuple[float, int, Timer]]) -> None:
        """Timers taken to run that did not: they run when the loop runs again."""
        for entry in entries:
            heapq.heappush(self._heap, entry)
        heap = self._heap
        if heap and heap[0][0] < self._wake_at:
            self._arm(loop, heap[0][0])

    def _cancelled_one(self) -> None:
        """A timer was cancelled: when they are most of the heap, it is made again without them."""
        self._cancelled += 1
        heap = self._heap
        if self._cancelled > 100 and self._cancelled * 2 > len(heap):
            self._heap = [entry for entry in heap if entry[2]._callback is not None]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> asyncio.Handle:
        return self.loop.call_soon(callback, *args)


class ScaledClock(Clock):
    """Time that runs ``scale`` times faster than the wall clock, from a given origin."""

    def __init__(self, scale: float, loop: asyncio.AbstractEventLoop | None = None, start: float | None = None):
        super().__init__(loop)
        if scale <= 0:
            raise ValueError("the time scale must be positive")
        self.scale = scale
        self._origin_real = time.time()
        # Resuming after a restart: simulated time goes on from where it was, never backwards.
        self._origin = max(start or 0.0, self._origin_real)

    def now(self) -> float:
        return self._origin + (time.time() - self._origin_real) * self.scale

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return self._after(max(0.0, (when - self.now()) / self.scale), callback, args)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return self._after(max(0.0, delay) / self.scale, callback, args)
