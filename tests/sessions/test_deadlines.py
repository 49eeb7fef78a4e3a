"""Deadlines: many waits' time limits on one event-loop timer."""

from __future__ import annotations

import asyncio

import pytest

from engine.sessions.deadlines import Deadlines


class Late(Exception):
    pass


def _scheduled(loop: asyncio.AbstractEventLoop) -> int:
    """Timers the loop holds that are not cancelled (CPython's selector loop keeps them in ``_scheduled``)."""
    return sum(1 for handle in loop._scheduled if not handle.cancelled())  # type: ignore[attr-defined]


async def test_a_wait_not_done_in_time_fails_with_the_error():
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(Late)
    future = loop.create_future()
    deadlines.add(future, 0.02)
    with pytest.raises(Late):
        await asyncio.wait_for(future, 1)
    assert len(deadlines) == 0


async def test_a_wait_done_in_time_is_left_alone_and_forgotten():
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(Late)
    future = loop.create_future()
    deadlines.add(future, 0.02)
    future.set_result("stored")
    deadlines.settled()
    assert len(deadlines) == 0
    await asyncio.sleep(0.05)
    assert future.result() == "stored"


async def test_an_earlier_limit_added_later_fails_first():
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(Late)
    slow, fast = loop.create_future(), loop.create_future()
    deadlines.add(slow, 5)
    deadlines.add(fast, 0.02)
    with pytest.raises(Late):
        await asyncio.wait_for(fast, 1)
    assert not slow.done()
    assert len(deadlines) == 1
    slow.cancel()
    deadlines.settled()
    assert len(deadlines) == 0


async def test_a_cancelled_wait_is_skipped():
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(Late)
    cancelled, waiting = loop.create_future(), loop.create_future()
    deadlines.add(cancelled, 0.01)
    deadlines.add(waiting, 0.03)
    cancelled.cancel()
    with pytest.raises(Late):
        await asyncio.wait_for(waiting, 1)
    assert cancelled.cancelled()


async def test_many_waits_hold_one_timer_and_only_the_waits_in_progress():
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(Late)
    before = _scheduled(loop)
    futures = [loop.create_future() for _ in range(1000)]
    for future in futures:
        deadlines.add(future, 10)
    assert _scheduled(loop) - before == 1
    for future in futures[:990]:  # settled in the order they began, as the writer does
        future.set_result(None)
    deadlines.settled()
    assert len(deadlines) == 10
    for future in futures[990:]:
        future.set_result(None)
    deadlines.settled()
    assert len(deadlines) == 0


def test_waits_of_a_closed_loop_do_not_hold_up_the_next_loops():
    deadlines = Deadlines(Late)
    first = asyncio.new_event_loop()
    try:
        abandoned = first.create_future()
        deadlines.add(abandoned, 0.001)  # its timer never runs: the loop closes first
    finally:
        first.close()

    async def on_a_new_loop() -> None:
        future = asyncio.get_running_loop().create_future()
        deadlines.add(future, 0.02)
        with pytest.raises(Late):
            await asyncio.wait_for(future, 1)

    asyncio.run(on_a_new_loop())
    assert len(deadlines) == 0
