"""Retention: each domain purges its own tables in one call; what is live or recent stays."""

from __future__ import annotations

import time

from sqlalchemy import update

from engine import persistence
from engine.callbacks import event_groups
from engine.callbacks import rows as callback_rows
from engine.notifications import rows as notification_rows
from engine.sessions import rows as session_rows
from engine.storage import UnitOfWork


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
    store = await persistence.open_store(db_url)
    old, new = time.time() - 40 * 86400, time.time()
    try:
        unit = UnitOfWork()
        unit.add(session_rows.SESSIONS, [session("old-ended", "finished", old), session("old-live", "running", old),
                                         session("new-ended", "cancelled", new)])
        unit.add(callback_rows.CALLBACKS, [callback("old-done", "COMPLETED", old), callback("old-open", "QUEUED", old),
                                           callback("new-done", "COMPLETED", new)])
        old_events = [event_groups.pending("old-done", None, n, old, "e", {}) for n in (1, 2, 3)]
        unit.add(event_groups.CALLBACK_EVENT_GROUPS, [  # the old callback's three events in two rows
            *event_groups.rows(old_events[:2]), *event_groups.rows(old_events[2:]),
            *event_groups.rows([event_groups.pending("new-done", None, 4, new, "e", {})])])
        unit.add(notification_rows.DELIVERIES, [delivery(10, "dead", old), delivery(11, "pending", old)])
        await store.write(unit)
        async with store.engine.begin() as conn:
            await conn.execute(update(notification_rows.deliveries).values(updated_at=old))
        counts = await persistence.purge(store, time.time() - 30 * 86400)
        assert counts == {"sessions": 1, "callbacks": 1, "callback_events": 3, "dead_letters": 1}
        assert await session_rows.get_session(store, "old-ended") is None
        assert await session_rows.get_session(store, "old-live") is not None
        assert await session_rows.get_session(store, "new-ended") is not None
        assert await callback_rows.get_record(store, "old-done") is None
        assert await callback_rows.get_record(store, "old-open") is not None
        assert [e["callback_id"] for e in await event_groups.events_of(store, "new-done")] == ["new-done"]
        assert await event_groups.events_of(store, "old-done") == []
        assert [d["id"] for d in await notification_rows.load_deliveries(store)] == [11]  # pending work stays
        assert await persistence.purge(store, time.time() - 30 * 86400) == {
            "sessions": 0, "callbacks": 0, "callback_events": 0, "dead_letters": 0}
    finally:
        await store.close()
