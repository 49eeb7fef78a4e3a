"""One timer for many tasks' timeouts: each task past its deadline gets a TimeoutError at about
its time, others are left alone, and a cancel from elsewhere stays a cancel."""

from __future__ import annotations

import asyncio

import pytest

from engine.notifications.deadlines import Deadlines


async def bounded(deadlines: Deadlines, seconds: float, work: float) -> str:
    task = asyncio.current_task()
    assert task is not None
    cancelling = deadlines.start(task, seconds)
    try:
        await asyncio.sleep(work)
        return "done"
    except asyncio.CancelledError:
        if deadlines.expired(task, cancelling):
            raise TimeoutError from None
        raise
    finally:
        deadlines.finish(task)


async def test_each_task_times_out_at_its_own_deadline() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    began = loop.time()
    ended: dict[str, float] = {}

    async def timed(name: str, seconds: float, work: float) -> str:
        try:
            return await bounded(deadlines, seconds, work)
        except TimeoutError:
            return "timeout"
        finally:
            ended[name] = loop.time() - began

    # the later-started, shorter deadline must re-arm the one timer earlier
    slow = asyncio.ensure_future(timed("long", 0.4, 5))
    await asyncio.sleep(0.01)
    results = await asyncio.gather(timed("short", 0.1, 5), timed("quick", 1.0, 0.05), slow)
    assert results == ["timeout", "done", "timeout"]
    assert 0.09 <= ended["short"] < 0.3 and 0.39 <= ended["long"] < 0.7


async def test_a_task_done_in_time_is_never_cancelled_later() -> None:
    deadlines = Deadlines()
    assert await bounded(deadlines, 0.1, 0.01) == "done"
    await asyncio.sleep(0.2)  # past the old deadline: nothing hits this task


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    deadlines = Deadlines()
    task = asyncio.ensure_future(bounded(deadlines, 5.0, 5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
