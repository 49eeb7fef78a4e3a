"""The engine clock's timers: every one waits in the clock's heap, and one asyncio timer is armed
for the earliest; they behave as asyncio's own (order, cancelling, errors, later loop turns)."""

from __future__ import annotations

import asyncio
import time

from engine.scxml.clock import Clock, ScaledClock


def _armed(loop: asyncio.AbstractEventLoop) -> int:
    """Timers the loop holds that are not cancelled (CPython's loop keeps them in ``_scheduled``)."""
    return sum(1 for handle in loop._scheduled if not handle.cancelled())  # type: ignore[attr-defined]


async def test_timers_run_when_due_and_those_due_together_in_the_order_set() -> None:
    clock, ran = Clock(), []
    for name in ("a", "b", "c"):
        clock.call_later(0.02, ran.append, name)
    clock.call_later(0.01, ran.append, "first")
    clock.call_at(clock.now() - 5, ran.append, "overdue")  # at once
    await asyncio.sleep(0.05)
    assert ran == ["overdue", "first", "a", "b", "c"]


async def test_many_timers_hold_one_asyncio_timer() -> None:
    loop = asyncio.get_running_loop()
    clock, ran = Clock(), []
    before = _armed(loop)
    for i in range(500):
        clock.call_later(0.01 + i / 100_000, ran.append, i)
    assert _armed(loop) - before == 1
    await asyncio.sleep(0.05)
    assert ran == list(range(500))


async def test_a_cancelled_timer_does_not_run_and_cancelling_a_run_one_changes_nothing() -> None:
    clock, ran = Clock(), []
    kept, dropped = clock.call_later(0.01, ran.append, "kept"), clock.call_later(0.01, ran.append, "dropped")
    dropped.cancel()
    assert dropped.cancelled() and not kept.cancelled()
    await asyncio.sleep(0.03)
    assert ran == ["kept"]
    kept.cancel()
    assert ran == ["kept"]


async def test_one_timers_error_goes_to_the_loops_handler_and_the_others_run() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        clock, ran = Clock(), []

        def boom() -> None:
            raise ValueError("boom")

        clock.call_later(0.01, ran.append, 1)
        clock.call_later(0.01, boom)
        clock.call_later(0.01, ran.append, 2)
        await asyncio.sleep(0.03)
        assert ran == [1, 2]
        assert len(reported) == 1 and isinstance(reported[0]["exception"], ValueError)
        assert "boom" in reported[0]["message"]
    finally:
        loop.set_exception_handler(None)


async def test_a_timer_set_by_a_running_one_runs_on_a_later_loop_turn() -> None:
    """As with asyncio's own timers: a zero delay is not within the run that set it, so whatever
    the loop has ready (here a call_soon) goes first."""
    loop = asyncio.get_running_loop()
    clock, ran = Clock(), []

    def first() -> None:
        ran.append("first")
        clock.call_later(0, ran.append, "set by first")
        loop.call_soon(ran.append, "soon")

    clock.call_later(0.01, first)
    await asyncio.sleep(0.03)
    assert ran == ["first", "soon", "set by first"]


async def test_cancelled_timers_do_not_pile_up() -> None:
    clock = Clock()
    timers = [clock.call_later(3600, print) for _ in range(1000)]
    for timer in timers[:990]:
        timer.cancel()
    assert len(clock._heap) < 200, "the heap is made again once cancelled timers are most of it"
    for timer in timers[990:]:
        timer.cancel()


async def test_a_scaled_clock_divides_its_delays_by_the_scale() -> None:
    clock, ran = ScaledClock(1000.0), []
    began = time.monotonic()
    clock.call_later(20, ran.append, "twenty clock seconds")  # 20 ms of real time
    clock.call_at(clock.now() + 40, ran.append, "forty")
    while len(ran) < 2 and time.monotonic() - began < 2:
        await asyncio.sleep(0.005)
    assert ran == ["twenty clock seconds", "forty"]
    assert 0.015 <= time.monotonic() - began < 1.0
