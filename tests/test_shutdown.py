"""Bounded stop steps: what overruns is named with where it waits; a failure does not stop the rest."""

from __future__ import annotations

import asyncio

import pytest

from engine.shutdown import await_chain, bounded_step


async def test_a_finished_step_and_a_failed_one_both_let_stopping_go_on(caplog: pytest.LogCaptureFixture) -> None:
    async def fine() -> int:
        return 1

    async def broken() -> None:
        raise OSError("socket already closed")

    assert await bounded_step("a fine part", fine(), 1) is True
    assert await bounded_step("a broken part", broken(), 1) is True
    [failed] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert failed.getMessage() == "stopping: a broken part failed: socket already closed" and failed.exc_info


async def test_an_overrunning_step_is_cancelled_and_its_await_chain_logged(caplog: pytest.LogCaptureFixture) -> None:
    gate = asyncio.Lock()
    await gate.acquire()
    cancelled = []

    async def waits_for_the_lock() -> None:
        try:
            async with gate:
                pass
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    assert await bounded_step("the locked part", waits_for_the_lock(), 0.05) is False
    await asyncio.sleep(0)
    assert cancelled == [True]
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("stopping: the locked part did not finish within 0.05 s; going on without it.")
    assert "waits_for_the_lock > " in line and "Lock.acquire" in line


async def test_the_chain_follows_awaits_through_coroutines_and_generators() -> None:
    class Answer:  # an awaitable written as a generator, as some drivers' are
        def __init__(self) -> None:
            self.future = asyncio.get_running_loop().create_future()

        def __await__(self):
            return (yield from self.future.__await__())

    async def inner() -> None:
        await Answer()

    async def outer() -> None:
        await inner()

    task = asyncio.create_task(outer())
    await asyncio.sleep(0)
    chain = [c.split(" ", 1)[1].rsplit(".", 1)[-1] for c in await_chain(task.get_coro())]
    assert chain == ["outer", "inner", "__await__"]  # the future's bare iterator tells nothing more
    task.cancel()


async def test_cancelling_the_stop_cancels_the_step_it_waits_for() -> None:
    started, cancelled = asyncio.Event(), []

    async def slow_part() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    stopping = asyncio.create_task(bounded_step("a slow part", slow_part(), 3600))
    await started.wait()
    stopping.cancel()
    await asyncio.wait([stopping])
    await asyncio.sleep(0)
    assert stopping.cancelled() and cancelled == [True]
