"""The generic store: migrations apply once, a unit of work is all or nothing and writes each
table as the table declares, on SQLite and PostgreSQL. Uses tables of its own, no domain's."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.exc import IntegrityError

from engine.storage import Migration, Schema, Store, TableWrite, UnitOfWork, creates

local = MetaData()
things = Table("things", local, Column("id", String(20), primary_key=True),
               Column("made", Integer, nullable=False), Column("state", String(20), nullable=False))
log_rows = Table("log_rows", local, Column("id", Integer, primary_key=True, autoincrement=False),
                 Column("text", String(50), nullable=False))
blobs = Table("blobs", local, Column("hash", String(20), primary_key=True), Column("body", String(50)))

THINGS = TableWrite(things, replace=("state",))
LOG = TableWrite(log_rows, sequenced=True)
BLOBS = TableWrite(blobs, keep_existing=True)
SCHEMA = Schema("test", (Migration(101, "things and logs", creates(things, log_rows)),
                         Migration(102, "blobs", creates(blobs))), (THINGS, LOG, BLOBS))


def unit(**tables: list) -> UnitOfWork:
    u = UnitOfWork()
    for name, rows in tables.items():
        u.add({"things": THINGS, "log": LOG, "blobs": BLOBS}[name], rows)
    return u


async def versions(store: Store) -> list[int]:
    async with store.engine.connect() as conn:
        return sorted((await conn.execute(text("select version from schema_migrations"))).scalars())


async def test_migrations_apply_once_and_the_sequence_continues(db_url: str) -> None:
    store = await Store.open(db_url, [SCHEMA])
    try:
        assert await versions(store) == [4, 7, 8, 101, 102]  # storage's own: key/value table 4, cluster tables 7, 8
        first = store.new_id()
        await store.write(unit(log=[{"id": first, "text": "a"}]))
    finally:
        await store.close()
    store = await Store.open(db_url, [SCHEMA])  # a second start applies nothing, continues the ids
    try:
        assert store.new_id() == first + 1
        assert await versions(store) == [4, 7, 8, 101, 102]
    finally:
        await store.close()


async def test_two_schemas_cannot_claim_one_version() -> None:
    other = Schema("other", (Migration(101, "clash", creates()),))
    with pytest.raises(ValueError, match="claimed by both test and other"):
        await Store.open("sqlite+aiosqlite:///:memory:", [SCHEMA, other])


async def test_a_unit_is_all_or_nothing_and_upserts_replace_only_declared_columns(db_url: str) -> None:
    store = await Store.open(db_url, [SCHEMA])
    try:
        await store.write(unit(things=[{"id": "a", "made": 1, "state": "new"}], log=[{"id": 1, "text": "x"}]))
        broken = unit(things=[{"id": "a", "made": 9, "state": "broken"}, {"id": "b", "made": 2, "state": "new"}],
                      log=[{"id": 1, "text": "again"}])  # an insert-only table refuses a duplicate key
        with pytest.raises(IntegrityError):
            await store.write(broken)
        assert await store.rows_where(things) == [{"id": "a", "made": 1, "state": "new"}]
        await store.write(unit(things=[{"id": "a", "made": 9, "state": "done"}]))
        assert await store.rows_where(things) == [{"id": "a", "made": 1, "state": "done"}]  # made is kept
        await store.write(unit(blobs=[{"hash": "h", "body": "first"}]))
        await store.write(unit(blobs=[{"hash": "h", "body": "second"}]))  # content-addressed: first kept
        assert await store.fetch_one(select(blobs)) == {"hash": "h", "body": "first"}
    finally:
        await store.close()


async def test_rows_go_in_before_deletions_so_one_unit_may_add_and_remove_a_row(db_url: str) -> None:
    store = await Store.open(db_url, [SCHEMA])
    try:
        u = UnitOfWork()
        u.delete(LOG, [1])  # named before its insert: still deleted after it
        u.add(LOG, [{"id": 1, "text": "delivered at once"}, {"id": 2, "text": "kept"}])
        u.delete(THINGS, ["nothing-there"])
        u.values["clock"] = "12.5"
        await store.write(u)
        assert await store.rows_where(log_rows, order_by=(log_rows.c.id,)) == [{"id": 2, "text": "kept"}]
        assert await store.get_value("clock") == "12.5"
        await store.put_value("clock", "13", 1.0)
        assert await store.get_value("clock") == "13" and await store.get_value("other") is None
    finally:
        await store.close()


def test_a_unit_keeps_the_lists_it_is_given_and_is_empty_until_something_is_added() -> None:
    u = UnitOfWork()
    assert not u
    pending: list[dict] = []
    u.add(LOG, pending)
    u.delete(LOG, [])
    assert not u
    pending.append({"id": 5, "text": "added while the unit was built"})
    assert u and u.rows(LOG) == [{"id": 5, "text": "added while the unit was built"}]
    u.add(LOG, ({"id": n, "text": ""} for n in (6, 7)))  # a second add extends
    assert [r["id"] for r in u.rows(LOG)] == [5, 6, 7]
    v = UnitOfWork()
    v.values["k"] = "v"
    assert v


def test_a_table_write_checks_its_declaration() -> None:
    assert THINGS.key == "id" and BLOBS.key == "hash"
    with pytest.raises(ValueError, match="no columns"):
        TableWrite(things, replace=("colour",))
    with pytest.raises(ValueError, match="cannot also keep"):
        TableWrite(things, replace=("state",), keep_existing=True)
    pair = Table("pair", MetaData(), Column("a", Integer, primary_key=True), Column("b", Integer, primary_key=True))
    with pytest.raises(ValueError, match="one-column key"):
        TableWrite(pair)


def test_dumps_writes_what_the_fast_encoder_refuses_as_the_standard_one_does() -> None:
    import json

    from engine.storage.store import dumps

    value = {"big": 2**70, "nested": {1: "int key"}, "s": "é\u2028"}
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))
    assert dumps({"a": [1, 2.5, None, True]}) == '{"a":[1,2.5,null,true]}'
    assert dumps([float("nan")]) == "[null]"  # as JSON.stringify has it; states tag them first
