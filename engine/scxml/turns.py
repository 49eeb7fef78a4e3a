"""The queue of sessions that used up their turn: background work that must not crowd the loop.

A session that yields is not simply rescheduled with ``call_soon``: with several busy sessions
every loop iteration would then run one turn of each, and anything that needs many iterations
(a storage commit awaits a dozen times) would wait that many rounds of all of them. Instead the
yielded sessions wait here and run round-robin in slices of about ``turn_seconds``, with a pause
of the same length between slices, so the rest of the engine always gets at least half of the
loop however many sessions are busy. Sessions that never use up a turn (every ordinary flow)
never come here and lose nothing.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol

from .clock import Clock


class TakesTurns(Protocol):
    """A session as the turn queue sees it (the queue sits below the session it runs)."""

    def continue_turn(self, until: float) -> None: ...


class TurnQueue:
    """Round-robin slices of the loop for sessions that still have work after their turn."""

    def __init__(self, clock: Clock, slice_seconds: float):
        self._clock = clock
        self._slice = slice_seconds
        self._waiting: deque[TakesTurns] = deque()
        self._armed = False

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, session: TakesTurns) -> None:
        """Run ``session`` again in a coming slice (it goes to the back of the queue)."""
        self._waiting.append(session)
        if not self._armed:
            self._armed = True
            self._clock.loop.call_soon(self._run_slice)

    def _run_slice(self) -> None:
        ends = time.perf_counter() + self._slice
        waiting = self._waiting
        # Turn by turn, round-robin: a session that yields again goes to the back of the queue.
        while waiting:
            waiting.popleft().continue_turn(ends)
            if time.perf_counter() >= ends:
                break
        if waiting:
            self._clock.loop.call_later(self._slice, self._run_slice)
        else:
            self._armed = False
