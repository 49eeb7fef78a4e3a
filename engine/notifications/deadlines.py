"""Timeouts for many tasks at once with one timer.

``asyncio.timeout`` arms a timer per use (a ``TimerHandle`` pushed into the loop's heap, cancelled
when the block ends): under a notification load that was ~4 % of the event loop's time, one per
webhook POST. Here every task in flight has its deadline in a dict and one timer is armed for the
earliest; when it fires, the tasks past their deadline are cancelled the way ``asyncio.timeout``
does it, and ``expired`` tells the cancel that came from here from any other.
"""

from __future__ import annotations

import asyncio


class Deadlines:
    def __init__(self) -> None:
        self._due: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def start(self, task: asyncio.Task, seconds: float) -> int:
        """``task`` must be done within ``seconds``; returns its cancel count, for ``expired``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._due[task] = deadline
        if self._timer is None or deadline < self._timer_at:
            self._arm(loop, deadline)
        return task.cancelling()

    def expired(self, task: asyncio.Task, cancelling: int) -> bool:
        """Called on a ``CancelledError``: True when it came from the deadline alone (then the
        caller raises ``TimeoutError``), False when someone else cancelled the task too."""
        return task in self._expired and task.uncancel() <= cancelling

    def finish(self, task: asyncio.Task) -> None:
        self._due.pop(task, None)
        self._expired.discard(task)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._fire), at

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        earliest = None
        for task, deadline in list(self._due.items()):
            if deadline <= now:
                del self._due[task]
                if not task.done():
                    self._expired.add(task)
                    task.cancel()
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._arm(loop, earliest)
