"""The hung-test watchdog (tests/support/watchdog.py) writes every thread's and pending task's
stack once its bound is passed, and nothing before."""

from __future__ import annotations

import asyncio
import io
import time

from tests.support.watchdog import Watchdog


async def parked(never: asyncio.Future) -> None:
    await never


async def test_stacks_of_threads_and_pending_tasks_past_the_bound(tmp_path) -> None:
    stream = io.StringIO()
    dog = Watchdog(0.3, lambda: tmp_path, stream)
    never = asyncio.get_running_loop().create_future()
    task = asyncio.get_running_loop().create_task(parked(never))
    try:
        dog.arm("tests/x.py::test_hung")
        started = time.monotonic()
        while not dog.dumps and time.monotonic() - started < 10:
            await asyncio.sleep(0.05)  # the loop runs: the dump reads it from the watchdog's thread
        assert dog.dumps, "no dump within 10 s of a 0.3 s bound"
        text = dog.dumps[0].read_text()
        assert "tests/x.py::test_hung still running after 0.3 s" in text
        assert "test_stacks_of_threads_and_pending_tasks_past_the_bound" in text  # this thread's stack
        assert "in parked" in text and "await never" in text  # the pending task's
        shown = stream.getvalue()  # a stream without a descriptor: the threads from sys._current_frames()
        assert "still running after 0.3 s" in shown and "await never" in shown
        assert "test_stacks_of_threads_and_pending_tasks_past_the_bound" in shown
        assert f"WATCHDOG: the same in {dog.dumps[0]}" in shown
        await asyncio.sleep(0.5)
        assert len(dog.dumps) == 1  # once per test
    finally:
        dog.stop()
        task.cancel()


def test_nothing_within_the_bound(tmp_path) -> None:
    dog = Watchdog(0.5, lambda: tmp_path)
    try:
        for _ in range(5):
            dog.arm("t")
            time.sleep(0.2)
            dog.disarm()
        time.sleep(0.5)
        assert dog.dumps == [] and list(tmp_path.iterdir()) == []
    finally:
        dog.stop()
