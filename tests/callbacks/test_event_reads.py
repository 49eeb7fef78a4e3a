"""A callback's status events read while the batch carrying some of them is being written: each
event shows once, whether it is in memory, in that batch or stored (``GET .../events``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.callbacks import event_groups
from engine.runtime import Runtime
from engine.settings import Settings
from tests.callbacks.conftest import write_config
from tests.support.eventually import eventually

CANCELLED = "_cbe_on_callback_cancelled"


class GatedWrites:
    """The store's writes wait at a gate while it is closed: the batch being written is held."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.open = asyncio.Event()
        self.open.set()
        self.held = 0
        self._write = runtime.store.write

    async def write(self, unit: Any) -> None:
        self.held += 1
        try:
            await self.open.wait()
        finally:
            self.held -= 1
        await self._write(unit)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings.load(config_dir=write_config(tmp_path), env={}, data_dir=tmp_path / "data",
                             flows_dir=Path(__file__).resolve().parents[2] / "scxml", flow_watch_interval=0)
    built = await Runtime.build(settings)
    await built.start()
    try:
        yield built
    finally:
        await built.close()


async def scheduled(runtime: Runtime) -> str:
    """A callback scheduled for tomorrow: no flow runs, so nothing but the test writes for it."""
    desired = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    record = await runtime.callbacks.create("callback", {"_customer_number": "+15550040001",
                                                          "_desired_time": desired})
    return record["_id"]


async def names(runtime: Runtime, cid: str) -> list[str]:
    return [e["event_id"] for e in await runtime.callbacks.events_of("callback", cid)]


async def test_an_event_in_the_batch_being_written_is_read(runtime: Runtime, monkeypatch) -> None:
    cid = await scheduled(runtime)
    gate = GatedWrites(runtime)
    monkeypatch.setattr(runtime.store, "write", gate.write)
    gate.open.clear()
    cancel = asyncio.create_task(runtime.callbacks.cancel("callback", cid))
    await eventually(lambda: gate.held, lambda held: held == 1, timeout=5, expected="the cancel's batch held")
    try:
        during = await names(runtime, cid)  # the cancel's event is in the batch, not yet stored
    finally:
        gate.open.set()
        await cancel
    assert during == await names(runtime, cid)
    assert during.count(CANCELLED) == 1, during


async def test_an_event_stored_while_the_store_is_read_is_read_once(runtime: Runtime, monkeypatch) -> None:
    cid = await scheduled(runtime)
    gate = GatedWrites(runtime)
    monkeypatch.setattr(runtime.store, "write", gate.write)
    # A batch held at the gate keeps the next changes in memory, not yet in any batch.
    gate.open.clear()
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    first = asyncio.create_task(runtime.callbacks.reschedule("callback", cid, {"_new_desired_time": later}))
    await eventually(lambda: gate.held, lambda held: held == 1, timeout=5, expected="a batch held")
    cancel = asyncio.create_task(runtime.callbacks.cancel("callback", cid))
    await asyncio.sleep(0)
    real_events_of = event_groups.events_of
    commits = runtime.manager.commits

    async def events_of_after_the_commits(store: Any, callback_id: str) -> list[dict[str, Any]]:
        gate.open.set()  # both batches are written before the store is read
        await eventually(lambda: runtime.manager.commits, lambda n: n >= commits + 2, timeout=5,
                         expected="both batches written")
        return await real_events_of(store, callback_id)

    monkeypatch.setattr(event_groups, "events_of", events_of_after_the_commits)
    try:
        during = await names(runtime, cid)
    finally:
        gate.open.set()
        await first
        await cancel
    monkeypatch.setattr(event_groups, "events_of", real_events_of)
    assert during.count(CANCELLED) == 1, during
    assert during == await names(runtime, cid)
