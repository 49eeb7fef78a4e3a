"""The store: migrations apply once, a batch is all or nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from engine.storage import Batch, Store
from engine.storage.migrations import MIGRATIONS


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}"
    return request.getfixturevalue("postgres").new_database()


def session_row(sid: str, status: str = "running") -> dict:
    return {"id": sid, "flow": "f", "flow_hash": "h", "flow_version": 1, "status": status,
            "parent_id": None, "created_at": 1.0, "updated_at": 2.0, "snapshot": "{}"}


async def test_migrations_apply_once_and_ids_continue(db_url: str) -> None:
    store = await Store.open(db_url)
    first = store.new_id()
    await store.write_batch(Batch(inbox=[{"id": first, "session_id": "s", "event": "{}", "created_at": 0}]))
    await store.close()
    store = await Store.open(db_url)  # a second start applies nothing and continues the ids
    try:
        assert store.new_id() == first + 1
        async with store.engine.connect() as conn:
            from sqlalchemy import text

            versions = (await conn.execute(text("select version from schema_migrations"))).scalars().all()
        assert versions == [v for v, _, _ in MIGRATIONS]
    finally:
        await store.close()


async def test_a_batch_is_all_or_nothing(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        await store.write_batch(Batch(sessions=[session_row("a")],
                                      inbox=[{"id": 1, "session_id": "a", "event": "{}", "created_at": 0}]))
        broken = Batch(sessions=[session_row("a", "finished"), session_row("b")],
                       inbox=[{"id": 1, "session_id": "b", "event": "{}", "created_at": 0}])  # duplicate id
        with pytest.raises(IntegrityError):
            await store.write_batch(broken)
        assert (await store.get_session("a"))["status"] == "running"
        assert await store.get_session("b") is None
        # Upsert keeps creation data and replaces status and snapshot.
        await store.write_batch(Batch(sessions=[session_row("a", "finished")], inbox_done=[1]))
        assert (await store.get_session("a"))["status"] == "finished"
        assert await store.load_inbox() == []
        assert [r["id"] for r in await store.list_sessions(status="finished")] == ["a"]
    finally:
        await store.close()
