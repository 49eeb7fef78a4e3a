"""The queue of sessions that used up their turn: background work that must not crowd the loop.

A session that yields is not simply rescheduled with ``call_soon``: with several busy sessions
every loop iteration would then run one turn of each, and anything that needs many iterations
(a storage commit awaits a dozen times) would wait that many rounds of all of them. Instead the
yielded sessions wait here and run round-robin in slices of about ``turn_seconds``, with a pause
of the same length between slices, so the rest of the engine always gets at least half of the
loop however many sessions are busy. Sessions that never use up a turn (every ordinary flow)
never come here and lose nothing.

Sessions with events to take on the next loop iteration (delivered from another session, a
platform, a timer) wait here too (``soon``): drained by one loop callback, in order.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Protocol

from .clock import Clock

log = logging.getLogger("engine.scxml")


class TakesTurns(Protocol):
    """A session as the turn queue sees it (the queue sits below the session it runs)."""

    def continue_turn(self, until: float) -> None: ...

    def drain_scheduled(self) -> None: ...


class TurnQueue:
    """Round-robin slices of the loop for sessions that still have work after their turn."""

    def __init__(self, clock: Clock, slice_seconds: float):
        self._clock = clock
        self._slice = slice_seconds
        self._waiting: deque[TakesTurns] = deque()
        self._armed = False
        self._ready: list[TakesTurns] = []  # sessions to drain on the next loop iteration (``soon``)

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, session: TakesTurns) -> None:
        """Run ``session`` again in a coming slice (it goes to the back of the queue)."""
        self._waiting.append(session)
        if not self._armed:
            self._armed = True
            self._clock.loop.call_soon(self._run_slice)

    def soon(self, session: TakesTurns) -> None:
        """Drain ``session``'s queued events on the next loop iteration. One loop callback drains
        every session scheduled before it, in the order they were scheduled: a callback's
        platform events schedule ~6 drains, and an asyncio handle of its own for each cost some
        six Python calls. Sessions scheduled while those drain wait for the next iteration."""
        self._ready.append(session)
        if len(self._ready) == 1:
            self._clock.call_soon(self._run_ready)

    def _run_ready(self) -> None:
        ready, self._ready = self._ready, []
        for session in ready:
            try:
                session.drain_scheduled()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:  # reported as the loop reports a failed callback; the others still run
                log.exception("draining session %r failed", session)

    def _run_slice(self) -> None:
        ends = time.perf_counter() + self._slice
        waiting = self._waiting
        # Turn by turn, round-robin: a session that yields again goes to the back of the queue.
        while waiting:
            session = waiting.popleft()
            try:
                session.continue_turn(ends)
            except (SystemExit, KeyboardInterrupt):
                self._rearm()
                raise
            except BaseException:  # as in _run_ready: reported, and the others still get their turns
                log.exception("a turn of session %r failed", session)
            if time.perf_counter() >= ends:
                break
        self._rearm()

    def _rearm(self) -> None:
        """The next slice after a pause, or none when nobody waits: a turn that raised must not
        leave the queue armed with no slice coming (every session yielding later would wait for ever)."""
        if self._waiting:
            self._clock.loop.call_later(self._slice, self._run_slice)
        else:
            self._armed = False
