"""Named one-shot timers of the callback service: replace, cancel, late fires, failures."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from engine.callbacks.timers import Timers
from engine.scxml.clock import Clock, ScaledClock


async def test_a_timer_fires_once_with_its_argument_and_is_forgotten() -> None:
    fired: list[str] = []
    timers = Timers(Clock())
    timers.arm("ttl:a", time.time() + 0.02, fired.append, "a")
    assert "ttl:a" in timers
    await asyncio.sleep(0.1)
    assert fired == ["a"]
    assert "ttl:a" not in timers and len(timers) == 0


async def test_a_past_due_time_fires_at_once_late_rather_than_never() -> None:
    fired: list[str] = []
    timers = Timers(Clock())
    timers.arm("submit:b", time.time() - 3600, fired.append, "b")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert fired == ["b"]


async def test_arming_a_name_again_replaces_its_timer() -> None:
    fired: list[str] = []
    timers = Timers(Clock())
    timers.arm("ttl:c", time.time() + 0.02, fired.append, "first")
    timers.arm("ttl:c", time.time() + 0.05, fired.append, "second")
    assert len(timers) == 1
    await asyncio.sleep(0.15)
    assert fired == ["second"]


async def test_cancel_drops_a_timer_and_ignores_unknown_names() -> None:
    fired: list[str] = []
    timers = Timers(Clock())
    timers.arm("purge:d", time.time() + 0.02, fired.append, "d")
    timers.arm("ttl:d", time.time() + 0.02, fired.append, "d")
    timers.cancel("purge:d")
    timers.cancel("never-armed")
    await asyncio.sleep(0.1)
    assert fired == ["d"]
    timers.arm("ttl:e", time.time() + 0.02, fired.append, "e")
    timers.cancel_all()
    await asyncio.sleep(0.1)
    assert fired == ["d"] and len(timers) == 0


async def test_due_times_are_clock_times_of_a_scaled_clock() -> None:
    """An hour of simulated time passes in a fraction of a second at scale 36,000."""
    clock = ScaledClock(36_000)
    fired: list[str] = []
    timers = Timers(clock)
    timers.arm("ttl:f", clock.now() + 3600, fired.append, "f")
    await asyncio.sleep(0.03)
    assert fired == []
    await asyncio.sleep(0.3)
    assert fired == ["f"]


async def test_a_failing_callback_is_logged_and_the_others_still_fire(caplog: pytest.LogCaptureFixture) -> None:
    fired: list[str] = []

    def broken(arg: str) -> None:
        raise RuntimeError(f"no record {arg}")

    timers = Timers(Clock())
    timers.arm("ttl:g", time.time(), broken, "g")
    timers.arm("ttl:h", time.time(), fired.append, "h")
    with caplog.at_level(logging.ERROR, logger="engine.callbacks.timers"):
        await asyncio.sleep(0.05)
    assert fired == ["h"]
    assert "timer ttl:g failed" in caplog.text and "no record g" in caplog.text
