"""The one clock every engine timer reads (W3C delays now; scheduling and retries later).

Due times are absolute wall-clock seconds so that they can be stored and re-armed after a
restart. A scaled clock lets the simulator run a day of traffic in seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class Clock:
    """Wall-clock time with asyncio timers: a waiting timer costs no CPU."""

    scale: float = 1.0
    """How many seconds of this clock pass in one real second (timeouts are divided by it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        """Run ``callback`` at absolute time ``when`` (at once if it is already due)."""
        return self.loop.call_later(max(0.0, when - self.now()), callback, *args)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        """Run ``callback`` ``delay`` seconds of this clock from now: ``call_at(now() + delay)``
        without reading the time twice (the simulator's calls, rings and treatments)."""
        return self.loop.call_later(max(0.0, delay), callback, *args)

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

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        return self.loop.call_later(max(0.0, (when - self.now()) / self.scale), callback, *args)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        return self.loop.call_later(max(0.0, delay) / self.scale, callback, *args)
