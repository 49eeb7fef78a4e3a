"""Migration 6 (the callbacks' history): a database made before it, at version 5, gains the table
on the next start, keeps everything it had, and takes history rows at once."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import text

from engine import persistence
from engine.callbacks import event_groups, history
from engine.callbacks import rows as callback_rows
from engine.storage import Store, TableWrite, UnitOfWork
from tests.storage.test_old_database import build_old_database


def without_history() -> tuple:
    """Today's schemas as they were before migration 6 (and 9 and 10, which came after it)."""
    callbacks = replace(callback_rows.SCHEMA,
                        migrations=tuple(m for m in callback_rows.SCHEMA.migrations if m.version not in (6, 9, 10)),
                        writes=(callback_rows.CALLBACKS, TableWrite(callback_rows.callback_events, sequenced=True)))
    return tuple(callbacks if s is callback_rows.SCHEMA else s for s in persistence.SCHEMAS)


async def versions(store: Store) -> list[int]:
    async with store.engine.connect() as conn:
        return sorted(v for (v,) in (await conn.execute(text("select version from schema_migrations"))).all())


async def test_a_version_5_database_upgrades_and_keeps_its_rows(db_url: str) -> None:
    await build_old_database(db_url)
    store = await Store.open(db_url, without_history())
    try:
        assert await versions(store) == [1, 2, 3, 4, 5, 7, 8]  # 7, 8: storage's own (the cluster tables)
    finally:
        await store.close()

    store = await persistence.open_store(db_url)
    try:
        assert await versions(store) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        assert await callback_rows.load_open(store) == [{"_id": "c1"}]  # what it had is still there
        assert [e["name"] for e in await event_groups.events_of(store, "c1")] == ["e"]
        assert await history.stored(store, "c1") == []
        unit = UnitOfWork()
        unit.add(history.CALLBACK_HISTORY, [
            {"id": store.new_id(), "callback_id": "c1", "kind": history.STATE, "at": 5.0,
             "data": '{"from":"SCHEDULED","to":"QUEUED","reason":null,"source":"api create"}'},
            {"id": store.new_id(), "callback_id": "c0", "kind": history.STATE, "at": 5.0,
             "data": '{"from":"PROCESSING","to":"COMPLETED","reason":"AGENT_CONNECTED","source":"flow"}'}])
        await store.write(unit)
        [row] = await history.stored(store, "c1")
        assert history.timeline([row]) == [{"at": 5.0, "state": "QUEUED", "from": "SCHEDULED", "reason": None,
                                           "source": "api create"}]
    finally:
        await store.close()

    store = await persistence.open_store(db_url)  # the id sequence starts past the history's ids
    try:
        assert await versions(store) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]  # nothing applied twice
        assert store.new_id() > row["id"] + 1
        await persistence.purge(store, 10.0)  # c0 COMPLETED long ago: it goes with its history; c1 stays
        assert await history.stored(store, "c0") == [] and len(await history.stored(store, "c1")) == 1
    finally:
        await store.close()
