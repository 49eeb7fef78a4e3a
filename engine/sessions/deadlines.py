"""Time limits for many waits on one event-loop timer.

Every create waits for its commit, with a limit of seconds (``durability_timeout``), and the
commit comes within milliseconds. A timer of its own per wait, cancelled when the commit came,
stayed in the event loop's timer heap until its time: thousands of dead timers there made every
other timer's push and pop slower (1.2 % of the instructions of ``bench/callback_core.py``).
``engine/notifications/deadlines.py`` does the like for the webhook tasks it cancels; this one
fails futures, in the order of their times (a heap: a commit's waits come and go by thousands).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any


class Deadlines:
    """Fails each future given to ``add`` with ``error()`` once its time is up, unless it is
    done by then; one timer, for the earliest of them."""

    def __init__(self, error: Callable[[], BaseException]) -> None:
        self._error = error
        self._heap: list[tuple[float, int, asyncio.Future[Any]]] = []
        self._order = itertools.count()  # equal times: the futures are never compared
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, future: asyncio.Future[Any], seconds: float) -> None:
        loop = future.get_loop()
        if loop is not self._loop and self._loop is not None:  # another loop (tests)
            self._switch_to(loop)
        when = loop.time() + seconds
        heapq.heappush(self._heap, (when, next(self._order), future))
        if when < self._timer_at:
            self._arm(loop, when)

    def _switch_to(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keep the waits of ``loop`` here; each other loop's wait in progress gets a timer of
        its own on its loop (which may run again: stopped is not closed), as before there was one."""
        kept = []
        for entry in self._heap:
            when, _, future = entry
            other = future.get_loop()
            if other is loop:
                kept.append(entry)
            elif not future.done() and not other.is_closed():
                other.call_at(when, self._fail, future)
        heapq.heapify(kept)
        self._heap = kept
        self._timer_at = math.inf

    def _fail(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            future.set_exception(self._error())

    def settled(self) -> None:
        """Forget the futures at the front that are done: call it after settling some. Waits
        mostly end in the order they began, with the same limit, so this keeps the heap to the
        waits in progress."""
        heap = self._heap
        while heap and heap[0][2].done():
            heapq.heappop(heap)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop, self._timer_at = loop, when
        self._timer = loop.call_at(when, self._due)

    def _due(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer, self._timer_at = None, math.inf
        now = loop.time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            future = heapq.heappop(heap)[2]
            if not future.done():
                future.set_exception(self._error())
        self.settled()
        if heap:
            self._arm(loop, heap[0][0])
