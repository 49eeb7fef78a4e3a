"""Callback serials: what the engine writes, what it remembers, and the locality they buy.

The point of a serial (``engine/callbacks/serials.py``) is that one commit's status events and
history rows for the callbacks alive together land on a few index pages, where the index by the
random callback id put each on a page of its own: the WAL test measures exactly that.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine import persistence
from engine.api.appkeys import RUNTIME
from engine.callbacks import event_groups, history
from engine.callbacks import rows as callback_rows
from engine.callbacks.records import format_time
from engine.callbacks.serials import CallbackSerials
from engine.ids import random_id
from engine.storage import Store, UnitOfWork
from tests.callbacks.conftest import create, make_client, wait_state


class Sequence:
    """A store's id sequence, no more."""

    def __init__(self) -> None:
        self.next = 100

    def new_id(self) -> int:
        self.next += 1
        return self.next


def test_serials_grow_and_only_open_or_recent_ones_are_kept() -> None:
    open_records = {"open": {}}
    serials = CallbackSerials(Sequence(), open_records, recent=3)  # type: ignore[arg-type]
    assert serials.new("open") == 101 and serials.new("a") == 102
    serials.learn("loaded", -5)
    serials.learn("no serial", None)
    assert (serials.of("loaded"), serials.of("no serial"), serials.of("never")) == (-5, None, None)
    for cid in ("b", "c", "d", "e"):  # past twice ``recent``: the table is swept
        serials.new(cid)
    assert serials.of("open") == 101  # open: kept however old
    assert serials.of("a") is None and serials.of("loaded") is None  # neither open nor recent
    assert [serials.of(c) for c in ("c", "d", "e")] == [104, 105, 106]


def _frames(path: Path) -> int:
    """Frames in the WAL file (32-byte header, then a 24-byte header and a 4 KiB page each)."""
    wal = path.with_name(path.name + "-wal")
    return max(0, wal.stat().st_size - 32) // (24 + 4096) if wal.exists() else 0


async def test_one_commit_for_a_dozen_live_callbacks_dirties_few_index_pages(tmp_path: Path) -> None:
    """3,000 callbacks' events and history, then one commit of an event and a history row for each
    of the 12 last made (alive together): a few pages, where an index by the random callback id
    took one page per callback in each of the two indexes."""
    path = tmp_path / "engine.db"
    store = await persistence.open_store(f"sqlite+aiosqlite:///{path}")
    try:
        made: list[tuple[str, int]] = []
        for _ in range(30):
            unit = UnitOfWork()
            for _ in range(100):
                cid, serial = random_id(), store.new_id()
                made.append((cid, serial))
                unit.add(callback_rows.CALLBACKS, [callback_rows.record_row(_record(cid), serial)])
                events = [_event(store, cid, serial) for _ in range(5)]
                unit.add(event_groups.CALLBACK_EVENT_GROUPS, event_groups.rows(events))
                unit.add(history.CALLBACK_HISTORY, [_state(store, cid, serial) for _ in range(2)])
            await store.write(unit)
        db = sqlite3.connect(path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert _frames(path) == 0
        unit = UnitOfWork()
        for cid, serial in made[-12:]:
            unit.add(event_groups.CALLBACK_EVENT_GROUPS, event_groups.rows([_event(store, cid, serial)]))
            unit.add(history.CALLBACK_HISTORY, [_state(store, cid, serial)])
        await store.write(unit)
        frames = _frames(path)
        db.close()
        assert frames <= 10, frames  # 7 when written; 39 with the indexes by callback id
        assert len(await event_groups.events_of(store, made[-1][0])) == 6
    finally:
        await store.close()


def _record(cid: str) -> dict:
    return {"_id": cid, "_service_name": "svc", "_callback_state": "QUEUED", "_customer_number": "+15550000000",
            "_desired_time": format_time(1000.0), "_expiration_time": format_time(2000.0),
            "_created_time": format_time(1000.0)}


def _event(store: Store, cid: str, serial: int) -> event_groups.Pending:
    return event_groups.pending(cid, serial, store.new_id(), 1.0, "_cbe_on_callback_status_updated",
                                {"event_id": "_cbe_on_callback_status_updated"})


def _state(store: Store, cid: str, serial: int) -> dict:
    return {"id": store.new_id(), "callback_id": cid, "kind": history.STATE, "at": 1.0,
            "data": '{"from":"QUEUED","to":"PROCESSING","reason":null,"source":"flow"}', "callback_serial": serial}


async def test_the_engine_keys_every_row_of_a_callback_by_its_serial(aiohttp_client, tmp_path: Path) -> None:
    client = await make_client(aiohttp_client, tmp_path)
    runtime = client.app[RUNTIME]
    ids = [await create(client, "callback", _customer_number=f"+1555090400{i}") for i in range(3)]
    for cid in ids:
        await wait_state(client, cid, "COMPLETED")
    await runtime.manager.commit()
    db = sqlite3.connect(tmp_path / "data" / "engine.db")
    try:
        serials = dict(db.execute("SELECT id, serial FROM callbacks"))
        events = db.execute("SELECT callback_id, callback_serial FROM callback_events").fetchall()
        rows = db.execute("SELECT callback_id, callback_serial FROM callback_history").fetchall()
    finally:
        db.close()
    assert sorted(serials) == sorted(ids) and len(set(serials.values())) == 3
    assert [serials[cid] for cid in ids] == sorted(serials.values())  # made later, numbered higher
    assert len(events) >= 3 * 5 and all(serial == serials[cid] for cid, serial in events), events
    assert len(rows) >= 3 * 3 and all(serial == serials[cid] for cid, serial in rows), rows
    for cid in ids:  # the engine's own reads by callback: complete, oldest first
        found = await runtime.callbacks.event_rows(cid)
        assert len(found) == sum(1 for c, _ in events if c == cid)
        assert [r["id"] for r in found] == sorted(r["id"] for r in found)
        assert len(await history.stored(runtime.store, cid)) == sum(1 for c, _ in rows if c == cid)
