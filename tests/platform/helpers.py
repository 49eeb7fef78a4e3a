"""Test helpers: an event recorder that wakes waiters, and waits measured on the simulated clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from engine.platform import Simulator, SimulatorConfig
from engine.scxml.clock import ScaledClock

SCALE = 1000.0  # a simulated second lasts a real millisecond
SLACK = 0.5  # simulated seconds of tolerance: the loop's timers and the wall clock differ slightly


class Recorder:
    """The ``deliver`` callable: keeps (time, session, event, data) and wakes whoever waits on it."""

    def __init__(self, clock: ScaledClock):
        self.clock = clock
        self.events: list[tuple[float, str, str, dict[str, Any]]] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future]] = []

    def __call__(self, session_id: str, name: str, data: dict[str, Any]) -> None:
        self.events.append((self.clock.now(), session_id, name, data))
        for waiter in list(self._waiters):
            cond, fut = waiter
            if not fut.done() and cond():
                fut.set_result(None)
                self._waiters.remove(waiter)

    def named(self, name: str, session_id: str | None = None) -> list[dict[str, Any]]:
        return [d for _, s, n, d in self.events if n == name and (session_id is None or s == session_id)]

    def sessions(self, name: str) -> list[str]:
        return [s for _, s, n, _ in self.events if n == name]

    def time_of(self, name: str, session_id: str) -> float:
        return next(t for t, s, n, _ in self.events if n == name and s == session_id)

    async def until(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        if cond():
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((cond, fut))
        await asyncio.wait_for(fut, timeout)

    async def event(self, name: str, session_id: str | None = None, count: int = 1) -> dict[str, Any]:
        """Wait until ``count`` such events arrived; return the last of them."""
        await self.until(lambda: len(self.named(name, session_id)) >= count)
        return self.named(name, session_id)[count - 1]


async def advance(clock: ScaledClock, seconds: float) -> None:
    """Let ``seconds`` of simulated time pass (a timer on the same clock, not a polling loop)."""
    fut = asyncio.get_running_loop().create_future()
    clock.call_at(clock.now() + seconds, lambda: fut.done() or fut.set_result(None))
    await fut


async def turn() -> None:
    """One loop turn: answers to requests arrive on the next turn."""
    await asyncio.sleep(0)


def config(queues: dict[str, dict[str, Any]] | None = None, **settings: Any) -> SimulatorConfig:
    """A small config: one queue 'Q' with one agent, no dial rules unless given."""
    data: dict[str, Any] = {"queues": queues if queues is not None else {"Q": {"agents": 1, "handle_seconds": 100}},
                            "dial_rules": [], "seed": 7}
    data.update(settings)
    return SimulatorConfig.from_dict(data)


def make(conf: SimulatorConfig | None = None, scale: float = SCALE) -> tuple[Simulator, Recorder, ScaledClock]:
    clock = ScaledClock(scale)
    rec = Recorder(clock)
    return Simulator(conf or config(), clock, rec), rec, clock
