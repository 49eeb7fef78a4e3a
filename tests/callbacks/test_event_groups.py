"""Status events stored a batch at a time (``engine/callbacks/event_groups.py``, migration 10):
what a batch writes, what reads give back, and the view that keeps the old table's name."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlalchemy import text

from engine import persistence
from engine.callbacks import event_groups
from engine.callbacks import rows as callback_rows
from engine.runtime import Runtime
from engine.storage import UnitOfWork
from tests.callbacks.test_event_reads import runtime, scheduled  # noqa: F401 (the fixture)
from tests.callbacks.test_serials import _record as a_record
from tests.storage.conftest import db_url  # noqa: F401 (the fixture: SQLite and PostgreSQL)

CANCEL_EVENTS = ["_cbe_on_callback_scheduled", "_cbe_on_callback_status_updated", "_cbe_on_callback_cancelled"]


def test_a_batch_writes_one_row_per_callback_keyed_by_its_last_event() -> None:
    pending = [event_groups.pending("a", 1, 10, 1.0, "e1", {"n": 1}),
               event_groups.pending("b", 2, 11, 1.5, "e1", {"n": 2}),
               event_groups.pending("a", 1, 12, 2.0, "e2", {"n": 3}),
               event_groups.pending("a", None, 13, 2.5, "e3", {"n": 4}),  # its serial forgotten since
               event_groups.pending("c", None, 14, 3.0, "e1", {})]  # never known: found by its id
    rows = event_groups.rows(pending)
    assert [(r["callback_id"], r["callback_serial"], r["id"], r["created_at"]) for r in rows] == \
        [("a", 1, 13, 1.0), ("b", 2, 11, 1.5), ("c", None, 14, 3.0)]
    assert json.loads(rows[0]["events"]) == [[10, 1.0, "e1", {"n": 1}], [12, 2.0, "e2", {"n": 3}],
                                             [13, 2.5, "e3", {"n": 4}]]
    # read back as they were recorded, one dict per event, stored or not
    assert event_groups.expand(rows) == event_groups.expand_pending([pending[i] for i in (0, 2, 3, 1, 4)])
    assert event_groups.expand(rows[:1]) == [
        {"id": 10, "callback_id": "a", "created_at": 1.0, "name": "e1", "data": {"n": 1}},
        {"id": 12, "callback_id": "a", "created_at": 2.0, "name": "e2", "data": {"n": 3}},
        {"id": 13, "callback_id": "a", "created_at": 2.5, "name": "e3", "data": {"n": 4}}]


def test_a_message_is_written_as_it_was_when_recorded() -> None:
    """A value the record changes after the event (a list a flow appends to) is not rewritten."""
    message = {"tags": ["first"]}
    event = event_groups.pending("a", 1, 10, 1.0, "e1", message)
    message["tags"].append("later")
    assert event_groups.expand(event_groups.rows([event]))[0]["data"] == {"tags": ["first"]}


async def test_a_busy_batch_packs_a_callbacks_events_and_reads_give_each_once(runtime: Runtime, tmp_path: Path) -> None:  # noqa: F811
    cid = await scheduled(runtime)
    await runtime.manager.commit()
    await runtime.callbacks.cancel("callback", cid)  # two events, one batch
    await runtime.manager.commit()
    db = sqlite3.connect(tmp_path / "data" / "engine.db")
    try:
        groups = db.execute("SELECT id, events FROM callback_event_groups WHERE callback_id = ? ORDER BY id",
                            (cid,)).fetchall()
        view = db.execute("SELECT id, name, data, created_at, callback_serial FROM callback_events "
                          "WHERE callback_id = ? ORDER BY id", (cid,)).fetchall()
    finally:
        db.close()
    assert [len(json.loads(events)) for _, events in groups] == [1, 2]
    assert groups[-1][0] == max(row[0] for row in view)  # a row's key: its last event's id
    found = await runtime.callbacks.event_rows(cid)
    assert [e["name"] for e in found] == CANCEL_EVENTS
    assert [(e["id"], e["name"], e["data"], e["created_at"]) for e in found] == \
        [(i, name, json.loads(data), at) for i, name, data, at, _ in view]
    assert {serial for *_, serial in view} == {runtime.callbacks.serials.of(cid)}
    assert [e["event_id"] for e in await runtime.callbacks.events_of("callback", cid)] == CANCEL_EVENTS


async def test_the_view_of_the_old_name_reads_one_row_per_event(db_url: str) -> None:  # noqa: F811
    store = await persistence.open_store(db_url)
    try:
        unit = UnitOfWork()
        unit.add(callback_rows.CALLBACKS, [callback_rows.record_row(a_record("c1"), 5)])  # reads go by its serial
        first = [event_groups.pending("c1", 5, 21, 1.25, "a", {"k": "v", "n": [1, 2]}),
                 event_groups.pending("c1", 5, 22, 1.5, "b", {})]
        unit.add(event_groups.CALLBACK_EVENT_GROUPS, event_groups.rows(first) + event_groups.rows(
            [event_groups.pending("c2", None, 23, 2.0, "c", {"x": None})]))
        await store.write(unit)
        async with store.engine.connect() as conn:
            found = (await conn.execute(text("SELECT id, callback_id, name, data, created_at, callback_serial "
                                             "FROM callback_events ORDER BY id"))).all()
        assert [(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in found] == [
            (21, "c1", "a", {"k": "v", "n": [1, 2]}, 1.25, 5), (22, "c1", "b", {}, 1.5, 5),
            (23, "c2", "c", {"x": None}, 2.0, None)]
        assert [e["id"] for e in await event_groups.events_of(store, "c1")] == [21, 22]
        assert [e["data"] for e in await event_groups.events_of(store, "c2")] == [{"x": None}]
    finally:
        await store.close()


async def test_an_unreadable_old_message_survives_the_migration_as_text(tmp_path: Path) -> None:
    """Migration 10 on SQLite keeps a row whose data is not JSON (the engine never wrote one; a
    hand-edited database may hold it) as a string, instead of failing the upgrade."""
    from engine.storage import Store
    from tests.storage.test_serial_migration import before_serials

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    store = await Store.open(url, before_serials())
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text("INSERT INTO callback_events (id, callback_id, name, data, created_at) "
                                    "VALUES (7, 'c9', 'e', 'not json', 1.0), (8, 'c9', 'f', :ok, 2.0)"),
                               {"ok": '{"ok":true}'})
    finally:
        await store.close()
    store = await persistence.open_store(url)
    try:
        assert [(e["id"], e["name"], e["data"]) for e in await event_groups.events_of(store, "c9")] == \
            [(7, "e", "not json"), (8, "f", {"ok": True})]
        assert store.new_id() > 8
    finally:
        await store.close()


async def test_the_migration_keeps_each_event_exactly_on_both_dialects(db_url: str) -> None:  # noqa: F811
    """Migration 10 copies an event's time to the last bit (SQLite's json_array wrote a REAL with
    15 digits: 1733338339.1234567 became 1733338339.12346) and keeps a message that is not JSON
    as a string on PostgreSQL too (its cast to json failed the upgrade: the engine never started)."""
    from engine.storage import Store
    from tests.storage.test_serial_migration import before_serials

    precise = 1733338339.1234567
    store = await Store.open(db_url, before_serials())
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text("INSERT INTO callback_events (id, callback_id, name, data, created_at) "
                                    "VALUES (7, 'c9', 'e', 'not json', :a), (8, 'c9', 'f', :ok, :b), "
                                    "(9, 'c9', 'g', :t, 5.0)"),
                               {"ok": '{"ok":true}', "t": '{"t":0.1}', "a": precise, "b": 0.1})
    finally:
        await store.close()
    store = await persistence.open_store(db_url)
    try:
        assert [(e["id"], e["name"], e["data"], e["created_at"]) for e in await event_groups.events_of(store, "c9")] \
            == [(7, "e", "not json", precise), (8, "f", {"ok": True}, 0.1), (9, "g", {"t": 0.1}, 5.0)]
        async with store.engine.connect() as conn:
            view = (await conn.execute(text("SELECT id, created_at FROM callback_events ORDER BY id"))).all()
        assert [(r[0], r[1]) for r in view] == [(7, precise), (8, 0.1), (9, 5.0)]
        assert store.new_id() > 9
    finally:
        await store.close()
