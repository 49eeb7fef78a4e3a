"""The waiting helpers themselves: they return what held, and fail readably when it never did."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.eventually import eventually, settled, stays_false


async def test_returns_the_value_that_held_from_a_sync_probe() -> None:
    calls = []

    def probe() -> list[int]:
        calls.append(1)
        return list(calls)

    assert await eventually(probe, lambda got: len(got) >= 3, interval=0.001) == [1, 1, 1]


async def test_awaits_an_async_probe() -> None:
    async def probe() -> str:
        await asyncio.sleep(0)
        return "ready"

    assert await eventually(probe) == "ready"


async def test_failure_names_what_was_expected_and_the_last_value() -> None:
    with pytest.raises(AssertionError) as failed:
        await eventually(lambda: {"state": "QUEUED"}, lambda rec: rec["state"] == "COMPLETED",
                         timeout=0.05, expected="COMPLETED")
    assert "still not COMPLETED" in str(failed.value) and "'QUEUED'" in str(failed.value)


async def test_ignored_errors_mean_not_yet_and_show_when_they_were_last() -> None:
    answers = iter([ConnectionError("refused"), ConnectionError("refused"), 200])

    def probe() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await eventually(probe, ignoring=(ConnectionError,), interval=0.001) == 200
    with pytest.raises(AssertionError, match="refused"):
        await eventually(lambda: (_ for _ in ()).throw(ConnectionError("refused")), ignoring=(ConnectionError,),
                         timeout=0.05)


async def test_other_errors_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        await eventually(lambda: {}["missing"], timeout=0.05)


async def test_a_slow_probe_gets_a_last_look_at_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def probe() -> bool:
        await asyncio.sleep(0.06)
        return loop.time() - started > 0.1

    assert await eventually(probe, timeout=0.1, interval=0.05)


async def test_stays_false_watches_the_whole_window() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await stays_false(lambda: False, 0.1)
    assert loop.time() - started >= 0.1
    flips = loop.time() + 0.05
    with pytest.raises(AssertionError, match=r"a push happened within the 0\.5 s window"):
        await stays_false(lambda: loop.time() > flips and "push", 0.5, what="a push")
    assert loop.time() - started < 0.5


async def test_settled_waits_for_the_burst_to_end() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    arrivals = [started + 0.05 * i for i in range(1, 5)]

    def arrived() -> int:
        return sum(at <= loop.time() for at in arrivals)

    assert await settled(arrived, 0.1) == 4
    assert loop.time() - started >= 0.3
    with pytest.raises(AssertionError, match="still changing"):
        await settled(loop.time, 0.1, timeout=0.2, what="the clock")
