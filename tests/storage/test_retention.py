"""Retention: what ended long ago goes; what is live or recent stays."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.storage import Batch, Store


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}"
    return request.getfixturevalue("postgres").new_database()


def session(sid: str, status: str, updated: float) -> dict:
    return {"id": sid, "flow": "f", "flow_hash": "h", "flow_version": 1, "status": status, "parent_id": None,
            "created_at": updated, "updated_at": updated, "snapshot": "{}"}


def callback(cid: str, state: str, updated: float) -> dict:
    return {"id": cid, "service": "s", "state": state, "customer_number": "+1555", "desired_time": updated,
            "expiration_time": updated, "session_id": None, "created_at": updated, "updated_at": updated,
            "record": "{}"}


def delivery(did: int, status: str, updated: float) -> dict:
    return {"id": did, "ordering_key": "k", "status": status, "attempts": 1, "next_at": 0.0, "record": "{}",
            "updated_at": updated}


async def test_purge_removes_only_what_ended_before_the_cutoff(db_url: str) -> None:
    store = await Store.open(db_url)
    old, new = time.time() - 40 * 86400, time.time()
    try:
        await store.write_batch(Batch(
            sessions=[session("old-ended", "finished", old), session("old-live", "running", old),
                      session("new-ended", "cancelled", new)],
            callbacks=[callback("old-done", "COMPLETED", old), callback("old-open", "QUEUED", old),
                       callback("new-done", "COMPLETED", new)],
            callback_events=[{"id": 1, "callback_id": "old-done", "name": "e", "data": "{}", "created_at": old},
                             {"id": 2, "callback_id": "new-done", "name": "e", "data": "{}", "created_at": new}],
        ))
        # deliveries keep their own updated_at from the row
        await store.write_batch(Batch(deliveries=[delivery(10, "dead", old), delivery(11, "pending", old)]))
        async with store.engine.begin() as conn:
            from sqlalchemy import update

            from engine.storage import schema

            await conn.execute(update(schema.deliveries).values(updated_at=old))
        counts = await store.purge_older_than(time.time() - 30 * 86400)
        assert counts == {"sessions": 1, "callbacks": 1, "callback_events": 1, "dead_letters": 1}
        assert await store.get_session("old-ended") is None
        assert await store.get_session("old-live") is not None and await store.get_session("new-ended") is not None
        assert await store.get_callback("old-done") is None and await store.get_callback("old-open") is not None
        assert [e["callback_id"] for e in await store.callback_events_of("new-done")] == ["new-done"]
        assert [d["id"] for d in await store.load_deliveries()] == [11]  # pending work is never purged
    finally:
        await store.close()
