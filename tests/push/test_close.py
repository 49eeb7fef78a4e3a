"""The engine stops cleanly with a push's storage write in flight.

After a successful send, the push sender stores the credentials' new status (``_flag``): a write
through SQLAlchemy on aiosqlite. An attempt cancelled in that write unwinds by closing the
interrupted connection (SQLAlchemy's terminate, shielded). When the engine's close cancelled the
attempt without waiting for it, that unwinding was still running when the event loop's owner
(pytest-asyncio, ``asyncio.run``) cancelled every task left: cancelled a second time, aiosqlite's
close waits in its ``finally`` for a worker thread that has already stopped, and the loop's close
waits for that task forever (a worker hung once in a test's teardown this way).
"""

from __future__ import annotations

import asyncio
import time

from engine.api.appkeys import RUNTIME
from tests.push.test_rules import SIMULATOR, create_push, wait_events


async def test_close_with_a_push_storage_write_in_flight(push_engine, google) -> None:
    client = await push_engine({"dialling": {"_service": "callback", "_dial_retry_timeout": 30,
                                             "_max_dial_attempts": 1}}, None, SIMULATOR)
    runtime = client.app[RUNTIME]
    assert runtime.fcm.credentials.status == "unknown"  # the first send that succeeds stores "ok"
    store, real_put = runtime.push.store, runtime.push.store.put_value
    writing = asyncio.Event()

    async def slow_put(key: str, value: str, updated_at: float) -> None:
        # A loaded machine: the write's statement takes two seconds in aiosqlite's thread.
        async with store.engine.begin() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.create_function("cbe_test_sleep", 1, time.sleep)
            writing.set()
            await conn.exec_driver_sql("SELECT cbe_test_sleep(2)")
        await real_put(key, value, updated_at)

    store.put_value = slow_put
    await create_push(client, "dialling", 1, number="+15550020010")
    await wait_events(google, 1, 1)
    await asyncio.wait_for(writing.wait(), 10)
    await client.close()  # the app's cleanup: the runtime closes

    # What the loop's owner does next: cancel every task left, in the order of a set (here the
    # order they were made in, the one that hangs: the attempt before its connection's close).
    left = sorted((t for t in asyncio.all_tasks() if t is not asyncio.current_task()), key=_made)
    for task in left:
        task.cancel()
    if left:
        _done, stuck = await asyncio.wait(left, timeout=15)
        for task in stuck:  # once more, so that this test fails instead of hanging the loop's close
            task.cancel()
        assert not stuck, f"tasks that survive cancellation: {stuck}"


def _made(task: asyncio.Task) -> int:
    number = task.get_name().rpartition("-")[2]
    return int(number) if number.isdigit() else 0
