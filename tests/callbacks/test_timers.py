"""One-shot timers of the callback service: replace, cancel, late fires, failures, one heap."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest

from engine.callbacks import timers as timers_module
from engine.callbacks.timers import Timers
from engine.scxml.clock import Clock, ScaledClock


def recording(clock: Clock, *kinds: str) -> tuple[Timers, list[str]]:
    """Timers whose kinds each record ``kind:argument`` when they fire."""
    fired: list[str] = []
    timers = Timers(clock)
    for kind in kinds:
        timers.on(kind, lambda arg, kind=kind: fired.append(f"{kind}:{arg}"))
    return timers, fired


async def test_a_timer_fires_once_with_its_argument_and_is_forgotten() -> None:
    timers, fired = recording(Clock(), "ttl")
    timers.arm("ttl", "a", time.time() + 0.02)
    assert "ttl:a" in timers and list(timers.names()) == ["ttl:a"]
    await asyncio.sleep(0.1)
    assert fired == ["ttl:a"]
    assert "ttl:a" not in timers and len(timers) == 0


async def test_a_past_due_time_fires_at_once_late_rather_than_never() -> None:
    timers, fired = recording(Clock(), "submit")
    timers.arm("submit", "b", time.time() - 3600)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert fired == ["submit:b"]


async def test_arming_a_name_again_replaces_its_timer() -> None:
    timers, fired = recording(Clock(), "ttl", "purge")
    timers.arm("ttl", "c", time.time() + 0.02)
    timers.arm("ttl", "c", time.time() + 0.05)
    timers.arm("purge", "c", time.time() + 0.03)  # another kind, same argument: its own timer
    assert len(timers) == 2
    await asyncio.sleep(0.035)
    assert fired == ["purge:c"]  # the replaced ttl did not fire at its first due time
    await asyncio.sleep(0.1)
    assert fired == ["purge:c", "ttl:c"]


async def test_an_earlier_timer_armed_later_wakes_the_loop_earlier() -> None:
    timers, fired = recording(Clock(), "ttl")
    timers.arm("ttl", "late", time.time() + 0.3)
    timers.arm("ttl", "soon", time.time() + 0.02)
    await asyncio.sleep(0.1)
    assert fired == ["ttl:soon"]
    await asyncio.sleep(0.3)
    assert fired == ["ttl:soon", "ttl:late"]


async def test_cancel_drops_a_timer_and_ignores_unknown_names() -> None:
    timers, fired = recording(Clock(), "ttl", "purge")
    timers.arm("purge", "d", time.time() + 0.02)
    timers.arm("ttl", "d", time.time() + 0.02)
    timers.cancel("purge", "d")
    timers.cancel("ttl", "never-armed")
    timers.cancel("no-such-kind", "d")
    await asyncio.sleep(0.1)
    assert fired == ["ttl:d"]
    timers.arm("ttl", "e", time.time() + 0.02)
    timers.cancel_all()
    await asyncio.sleep(0.1)
    assert fired == ["ttl:d"] and len(timers) == 0


async def test_cancel_then_arm_at_the_same_due_time_fires_once() -> None:
    """The cancelled entry (same due, kind and argument) is still in the heap: it must not fire
    a second time, nor stop the new one."""
    timers, fired = recording(Clock(), "ttl")
    due = time.time() + 0.02
    timers.arm("ttl", "f", due)
    timers.cancel("ttl", "f")
    timers.arm("ttl", "f", due)
    await asyncio.sleep(0.1)
    assert fired == ["ttl:f"]


async def test_due_times_are_clock_times_of_a_scaled_clock() -> None:
    """An hour of simulated time passes in a fraction of a second at scale 36,000."""
    clock = ScaledClock(36_000)
    timers, fired = recording(clock, "ttl")
    timers.arm("ttl", "f", clock.now() + 3600)
    await asyncio.sleep(0.03)
    assert fired == []
    await asyncio.sleep(0.3)
    assert fired == ["ttl:f"]


async def test_a_failing_callback_is_logged_and_the_others_still_fire(caplog: pytest.LogCaptureFixture) -> None:
    fired: list[str] = []

    def broken(arg: str) -> None:
        raise RuntimeError(f"no record {arg}")

    timers = Timers(Clock())
    timers.on("ttl", broken)
    timers.on("purge", fired.append)
    timers.arm("ttl", "g", time.time())
    timers.arm("purge", "h", time.time())
    with caplog.at_level(logging.ERROR, logger="engine.callbacks.timers"):
        await asyncio.sleep(0.05)
    assert fired == ["h"]
    assert "timer ttl:g failed" in caplog.text and "no record g" in caplog.text


async def test_a_callback_may_arm_and_cancel_timers_while_they_fire() -> None:
    """What the service does: a submit arms the TTL, a TTL cancels the purge."""
    fired: list[str] = []
    timers = Timers(Clock())

    def submit(arg: str) -> None:
        fired.append(f"submit:{arg}")
        timers.arm("ttl", arg, time.time() + 0.02)

    def ttl(arg: str) -> None:
        fired.append(f"ttl:{arg}")
        timers.cancel("purge", arg)

    timers.on("submit", submit)
    timers.on("ttl", ttl)
    timers.on("purge", lambda arg: fired.append(f"purge:{arg}"))
    timers.arm("purge", "i", time.time() + 0.2)
    timers.arm("submit", "i", time.time())
    await asyncio.sleep(0.3)
    assert fired == ["submit:i", "ttl:i"] and len(timers) == 0


async def test_many_overdue_timers_fire_in_due_order_over_several_loop_turns() -> None:
    """A restart with thousands overdue: all fire, earliest first, without holding the loop for
    all of them in one turn."""
    timers, fired = recording(Clock(), "submit")
    now = time.time()
    count = timers_module.BURST * 2 + 7
    dues = {f"{i:05d}": now - 10_000 + i for i in range(count)}
    order = list(dues)
    random.Random(3).shuffle(order)
    for arg in order:
        timers.arm("submit", arg, dues[arg])
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert 0 < len(fired) <= timers_module.BURST
    for _ in range(20):
        await asyncio.sleep(0)
    assert fired == [f"submit:{arg}" for arg in sorted(dues)]


async def test_cancelled_entries_do_not_pile_up_in_the_heap() -> None:
    """Callbacks that complete long before their TTL cancel it: the heap is rebuilt once its
    cancelled entries outnumber the live ones, so it stays near the number of live timers."""
    timers, _fired = recording(Clock(), "ttl")
    far = time.time() + 86400
    for i in range(20_000):
        timers.arm("ttl", f"cb{i}", far + i)
        if i >= 10:
            timers.cancel("ttl", f"cb{i - 10}")
    assert len(timers) == 10
    assert len(timers._heap) < 2 * timers_module.MIN_STALE + 20
    timers.cancel_all()


async def test_arming_an_unknown_kind_is_refused() -> None:
    timers = Timers(Clock())
    with pytest.raises(KeyError):
        timers.arm("ttl", "x", time.time())


async def test_a_fire_that_raises_past_exception_leaves_the_others_armed() -> None:
    """A callback raising a ``BaseException`` that is not an ``Exception`` (the clock reports it to the
    loop's exception handler) used to skip the re-arm: the timers due later never fired."""

    class Abort(BaseException):
        pass

    def boom(arg: str) -> None:
        raise Abort(arg)

    loop = asyncio.get_running_loop()
    reported: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context.get("exception")))
    try:
        timers, fired = recording(Clock(), "later")
        timers.on("boom", boom)
        timers.arm("boom", "a", time.time())
        timers.arm("later", "b", time.time() + 0.05)
        for _ in range(100):
            if fired:
                break
            await asyncio.sleep(0.01)
        assert fired == ["later:b"]
        assert [type(e) for e in reported] == [Abort]
    finally:
        loop.set_exception_handler(None)
