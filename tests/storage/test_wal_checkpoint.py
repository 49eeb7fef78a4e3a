"""The SQLite WAL stays bounded: every connection of the store checkpoints at ``CHECKPOINT_PAGES``
(not SQLite's default of 1,000 pages), and a stream of units never lets the WAL file grow past
that size and one unit, while everything committed stays readable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text

from engine.storage import Migration, Schema, Store, TableWrite, UnitOfWork, creates, sqlite_writer

local = MetaData()
pages = Table("wal_pages", local, Column("id", Integer, primary_key=True, autoincrement=False),
              Column("body", String(5000), nullable=False))
PAGES = TableWrite(pages, sequenced=True)
SCHEMA = Schema("wal_test", (Migration(301, "rows a page each", creates(pages)),), (PAGES,))


def _page_rows(store: Store, n: int) -> UnitOfWork:
    unit = UnitOfWork()
    unit.add(PAGES, [{"id": store.new_id(), "body": "x" * 3000} for _ in range(n)])  # a page per row
    return unit


async def test_every_connection_checkpoints_at_the_engine_size(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}", [SCHEMA])
    try:
        async with store.engine.connect() as conn:  # the pool's (retention, engine values, flows)
            assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == sqlite_writer.CHECKPOINT_PAGES
        await store.write(_page_rows(store, 1))
        writer = store._sqlite._conn  # type: ignore[union-attr]  # the unit-of-work writer's
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == sqlite_writer.CHECKPOINT_PAGES
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: the kill -9 contract
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await store.close()


async def test_the_wal_is_checkpointed_and_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a small checkpoint size (SQLite's default would let it reach 1,000 pages), forty units
    of ten pages each: the WAL file never holds much more than the size and one unit, and every
    row is there afterwards, also for a connection that reads the database file alone."""
    bound = 40
    monkeypatch.setattr(sqlite_writer, "CHECKPOINT_PAGES", bound)
    path = tmp_path / "engine.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}", [SCHEMA])
    page = 4096
    largest = 0
    try:
        for _ in range(40):
            await store.write(_page_rows(store, 10))
            largest = max(largest, os.path.getsize(f"{path}-wal"))
        # Checkpointed while running: in WAL mode only a checkpoint writes the database file.
        in_file = os.path.getsize(path)
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(pages))).scalar() == 400
    finally:
        await store.close()
    # Bounded: the size, the unit that crossed it, and the WAL header; without the setting it grows
    # to 400 pages and more.
    assert largest <= (bound + 15) * (page + 24) + 32, largest
    assert in_file >= (400 - bound - 15) * page, in_file
