"""A unit's rows reach the database column by column whatever way they are turned into the
driver's tuples: rows with every column, a batch where a row leaves a nullable column out (NULL,
the other rows unchanged), and a table of one column; on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, select

from engine.storage import Migration, Schema, Store, TableWrite, UnitOfWork, creates

local = MetaData()
notes = Table("unit_notes", local, Column("id", Integer, primary_key=True, autoincrement=False),
              Column("title", String(20), nullable=False), Column("body", String(20)),
              Column("tag", String(20)))
keys = Table("unit_keys", local, Column("key", String(20), primary_key=True))
NOTES = TableWrite(notes, replace=("title", "body", "tag"))
KEYS = TableWrite(keys, keep_existing=True)
SCHEMA = Schema("unit_rows_test", (Migration(311, "notes and keys", creates(notes, keys)),), (NOTES, KEYS))


async def stored(store: Store) -> list[tuple]:
    async with store.engine.connect() as conn:
        found = await conn.execute(select(notes.c.id, notes.c.title, notes.c.body, notes.c.tag).order_by(notes.c.id))
        return [tuple(r) for r in found]


async def test_rows_are_written_column_by_column(db_url: str) -> None:
    store = await Store.open(db_url, [SCHEMA])
    try:
        unit = UnitOfWork()  # every column, given in another order than the table's, and a stray key
        unit.add(NOTES, [{"tag": "t1", "body": "b1", "title": "one", "id": 1, "_extra": "ignored"},
                         {"id": 2, "title": "two", "body": None, "tag": "t2"}])
        unit.add(KEYS, [{"key": "a"}, {"key": "b"}])
        await store.write(unit)
        assert await stored(store) == [(1, "one", "b1", "t1"), (2, "two", None, "t2")]

        unit = UnitOfWork()  # one row leaves body out: NULL for it, the other rows as given
        unit.add(NOTES, [{"id": 1, "title": "uno", "body": "x", "tag": "t9"}, {"id": 3, "title": "three", "tag": "t3"}])
        unit.add(KEYS, [{"key": "a"}, {"key": "c"}])
        await store.write(unit)
        assert await stored(store) == [(1, "uno", "x", "t9"), (2, "two", None, "t2"), (3, "three", None, "t3")]
        async with store.engine.connect() as conn:
            assert sorted((await conn.execute(select(keys.c.key))).scalars()) == ["a", "b", "c"]
    finally:
        await store.close()
