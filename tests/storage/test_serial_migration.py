"""Migration 9 (status events and history keyed by their callback's serial): a database at version
8 with rows in it is converted in place, keeps every row, answers by callback in order and purges
by callback as before, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from dataclasses import replace

from sqlalchemy import inspect, text

from engine import persistence
from engine.callbacks import event_groups, history
from engine.callbacks import rows as callback_rows
from engine.callbacks.serial_migration import REPLACED_INDEXES, SERIAL_INDEXES
from engine.callbacks.serials import CallbackSerials
from engine.storage import Store, TableWrite, UnitOfWork
from tests.storage.test_old_database import build_old_database


def before_serials() -> tuple:
    """Today's schemas as they were at version 8 (one row per event: before 9 and 10)."""
    callbacks = replace(callback_rows.SCHEMA,
                        migrations=tuple(m for m in callback_rows.SCHEMA.migrations if m.version not in (9, 10)),
                        writes=(callback_rows.CALLBACKS, TableWrite(callback_rows.callback_events, sequenced=True),
                                history.CALLBACK_HISTORY))
    return tuple(callbacks if s is callback_rows.SCHEMA else s for s in persistence.SCHEMAS)


# Rows as the code of version 8 wrote them (no serial anywhere), besides those of the old database
# (c0 COMPLETED created at 0.5 and c1 QUEUED at 1.0, with event 13 for c1): c2 QUEUED at 2.0,
# events and history of c0, c1 and c2, and an event of a callback whose row is gone.
VERSION_8_ROWS = """
INSERT INTO callbacks (id, service, state, customer_number, desired_time, expiration_time, session_id, created_at,
    updated_at, record) VALUES ('c2', 'svc', 'QUEUED', '+1555', 2.0, 3.0, NULL, 2.0, 2.0, '{"_id":"c2"}');
INSERT INTO callback_events (id, callback_id, name, data, created_at) VALUES
    (20, 'c0', 'e0', '{}', 0.5), (22, 'c2', 'e2', '{}', 2.0), (23, 'gone', 'eg', '{}', 0.1),
    (27, 'c0', 'e0b', '{}', 0.6);
INSERT INTO callback_history (id, callback_id, kind, at, data) VALUES
    (24, 'c1', 'state', 1.0, '{"to":"QUEUED"}'), (25, 'c0', 'state', 0.5, '{"to":"COMPLETED"}'),
    (26, 'c2', 'state', 2.0, '{"to":"QUEUED"}'), (21, 'c1', 'delivery', 1.5, '{"delivery": 1}')
"""


async def sql(store: Store, query: str) -> list[tuple]:
    async with store.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(query))).all()]


async def build_version_8(db_url: str) -> None:
    await build_old_database(db_url)
    store = await Store.open(db_url, before_serials())
    try:
        async with store.engine.begin() as conn:
            for statement in VERSION_8_ROWS.split(";"):
                await conn.execute(text(statement))
        assert [v for (v,) in await sql(store, "SELECT version FROM schema_migrations ORDER BY version")] == \
            [1, 2, 3, 4, 5, 6, 7, 8]
    finally:
        await store.close()


async def test_a_version_8_database_is_converted_in_place(db_url: str) -> None:
    await build_version_8(db_url)
    store = await persistence.open_store(db_url)
    try:
        assert [v for (v,) in await sql(store, "SELECT version FROM schema_migrations ORDER BY version")] == \
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        # every callback numbered below the store's sequence, in order of creation
        serials = dict(await sql(store, "SELECT id, serial FROM callbacks ORDER BY created_at"))
        assert list(serials) == ["c0", "c1", "c2"] and serials["c0"] < serials["c1"] < serials["c2"] < 0
        # every event and history row carries its callback's serial; the orphan keeps NULL (the
        # events as migration 10 keeps them: a row each, read through the view of the old name)
        events = dict(await sql(store, "SELECT id, callback_serial FROM callback_events"))
        assert events == {13: serials["c1"], 20: serials["c0"], 22: serials["c2"], 23: None, 27: serials["c0"]}
        rows = dict(await sql(store, "SELECT id, callback_serial FROM callback_history"))
        assert rows == {21: serials["c1"], 24: serials["c1"], 25: serials["c0"], 26: serials["c2"]}
        async with store.engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: {i["name"] for t in ("callback_event_groups", "callback_history")
                                                     for i in inspect(c).get_indexes(t)})
        history_indexes = {name for name, (table, _) in SERIAL_INDEXES.items() if table == "callback_history"}
        assert history_indexes | set(event_groups.INDEXES) <= indexes and not set(REPLACED_INDEXES) & indexes
        # read by callback: complete, in id order
        assert [e["id"] for e in await event_groups.events_of(store, "c0")] == [20, 27]
        assert [e["name"] for e in await event_groups.events_of(store, "c1")] == ["e"]
        assert [e["id"] for e in await event_groups.events_of(store, "gone")] == [23]
        assert [r["id"] for r in await history.stored(store, "c1")] == [21, 24]

        # new rows: the serials of the open callbacks are learnt at load; a row written without one
        # (a delivery attempt for a callback no longer in memory) is found all the same
        known = CallbackSerials(store, {})
        assert sorted(r["_id"] for r in await callback_rows.load_open(store, known=known)) == ["c1", "c2"]
        assert known.of("c1") == serials["c1"] and known.of("c0") is None
        unit = UnitOfWork()
        later, last = store.new_id(), store.new_id()
        assert later > 27
        unit.add(event_groups.CALLBACK_EVENT_GROUPS,
                 event_groups.rows([event_groups.pending("c1", known.of("c1"), later, 3.0, "new", {})]))
        unit.add(history.CALLBACK_HISTORY, [
            {"id": later + 100, "callback_id": "c1", "kind": "state", "at": 3.0, "data": "{}",
             "callback_serial": known.of("c1")},
            {"id": last, "callback_id": "c1", "kind": "delivery", "at": 3.0, "data": "{}", "callback_serial": None}])
        await store.write(unit)
        assert [e["id"] for e in await event_groups.events_of(store, "c1")] == [13, later]
        assert [r["id"] for r in await history.stored(store, "c1")] == [21, 24, last, later + 100]

        # the purge takes a completed callback's rows, with a serial or without, and leaves the others
        unit = UnitOfWork()
        unit.add(history.CALLBACK_HISTORY, [{"id": store.new_id(), "callback_id": "c0", "kind": "push", "at": 3.0,
                                             "data": "{}", "callback_serial": None}])
        await store.write(unit)
        counts = await persistence.purge(store, 10.0)
        assert (counts["callbacks"], counts["callback_events"]) == (1, 2)
        assert await event_groups.events_of(store, "c0") == [] and await history.stored(store, "c0") == []
        assert [e["id"] for e in await event_groups.events_of(store, "c1")] == [13, later]
        assert len(await history.stored(store, "c1")) == 4 and len(await history.stored(store, "c2")) == 1
        assert [e["id"] for e in await event_groups.events_of(store, "gone")] == [23]  # no callback row: kept
    finally:
        await store.close()

    store = await persistence.open_store(db_url)  # nothing applied twice, the serials as they were
    try:
        assert len(await sql(store, "SELECT version FROM schema_migrations")) == 10
        assert dict(await sql(store, "SELECT id, serial FROM callbacks")) == {"c1": serials["c1"], "c2": serials["c2"]}
    finally:
        await store.close()


async def test_postgresql_reads_and_purges_by_callback_through_the_indexes(postgres) -> None:
    """What SQLite's plans show (tests/callbacks/test_query_plans.py), PostgreSQL's too: with
    sequential scans priced out, every read and delete by callback is an index scan, the
    ``IS NULL`` halves through the partial indexes by callback id."""
    from sqlalchemy import event

    store = await persistence.open_store(postgres.new_database())
    sent: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement: str, parameters, _context, _many) -> None:
        if "callback_event_groups" in statement or "callback_history" in statement:
            sent.append((statement, parameters))

    try:
        event.listen(store.engine.sync_engine, "before_cursor_execute", capture)
        await event_groups.events_of(store, "c1")
        await history.stored(store, "c1")
        await persistence.purge(store, 1.0)
        event.remove(store.engine.sync_engine, "before_cursor_execute", capture)
        # a read of each table; the events counted and deleted, the history deleted, each in two halves
        assert len(sent) == 8, sent
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plans = []
            for statement, parameters in sent:
                found = await conn.exec_driver_sql("EXPLAIN " + statement, parameters)
                plans.append("\n".join(r[0] for r in found.all()))
        for plan in plans:
            assert "Seq Scan on callback_event_groups" not in plan and "Seq Scan on callback_history" not in plan, plan
        # each through its index by serial or its partial one by callback id (an index or a bitmap scan)
        assert sum("_unserialed" in plan for plan in plans) == 5
        assert sum(re.search(r"ix_callback_\w+_serial\b", plan) is not None for plan in plans) == 5
    finally:
        await store.close()
