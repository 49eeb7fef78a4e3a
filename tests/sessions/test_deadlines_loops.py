"""Deadlines and several event loops: a wait of a loop that merely stopped (not closed) keeps
its time limit when a wait is added on another loop, and fails on time when its loop runs again."""

from __future__ import annotations

import asyncio

import pytest

from engine.sessions.deadlines import Deadlines


class Late(Exception):
    pass


def test_a_wait_on_a_loop_that_runs_again_still_times_out() -> None:
    deadlines = Deadlines(Late)
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        waiting = first.create_future()
        deadlines.add(waiting, 0.05)  # the first loop is not running now, but it will be again

        async def on_the_second() -> None:
            other = asyncio.get_running_loop().create_future()
            deadlines.add(other, 0.01)
            with pytest.raises(Late):
                await asyncio.wait_for(other, 1)

        second.run_until_complete(on_the_second())

        async def wait_on_the_first() -> None:
            await asyncio.wait_for(waiting, 1)

        with pytest.raises(Late):  # TimeoutError instead: its deadline was dropped
            first.run_until_complete(wait_on_the_first())
    finally:
        first.close()
        second.close()
