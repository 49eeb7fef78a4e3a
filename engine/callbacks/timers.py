"""One-shot timers by name on the engine clock, for the callback service's schedule.

Every due time (a scheduled callback's submit, its TTL, its purge) is derived from a stored
record and armed again after a restart, so a timer needs no persistence of its own: an asyncio
timer on the engine's clock (scaled with the simulator) is enough, and a due time already past
fires at once, late rather than never. Arming costs a ``loop.call_later``; a job scheduler
inspected the callable and woke its own loop for every one, several times per callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("engine.callbacks.timers")


class TimerClock(Protocol):
    """What the timers need of the engine clock."""

    def call_at(self, when: float, callback: Callable[..., object], *args: object) -> asyncio.TimerHandle: ...


class Timers:
    """Named one-shot timers: arming a name again replaces its timer, cancelling drops it."""

    __slots__ = ("_clock", "_handles")

    def __init__(self, clock: TimerClock) -> None:
        self._clock = clock
        self._handles: dict[str, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._handles)

    def __contains__(self, name: str) -> bool:
        return name in self._handles

    def arm(self, name: str, due: float, callback: Callable[[str], None], arg: str) -> None:
        """Call ``callback(arg)`` at clock time ``due`` (at once if past), replacing ``name``."""
        old = self._handles.pop(name, None)
        if old is not None:
            old.cancel()
        self._handles[name] = self._clock.call_at(due, self._fire, name, callback, arg)

    def cancel(self, name: str) -> None:
        """Drop the timer ``name``; nothing happens if it already fired or never was armed."""
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def _fire(self, name: str, callback: Callable[[str], None], arg: str) -> None:
        self._handles.pop(name, None)
        try:
            callback(arg)
        except Exception:  # one failing timer must not stop the loop's other callbacks
            log.exception("timer %s failed", name)
