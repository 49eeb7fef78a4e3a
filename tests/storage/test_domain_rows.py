"""Each domain's tables round-trip through its own rows module, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import asdict

from engine import persistence
from engine.callbacks import event_groups
from engine.callbacks import rows as callback_rows
from engine.callbacks.records import format_time
from engine.notifications import rows as notification_rows
from engine.notifications.delivery import Delivery
from engine.notifications.subscriptions import Subscription
from engine.scxml import SessionHost, compile_document
from engine.scxml.snapshot import encode_state
from engine.sessions import rows as session_rows
from engine.storage import UnitOfWork, dumps

WAITING = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="waiting">
  <datamodel><data id="n" expr="41 + 1"/></datamodel><state id="waiting"/></scxml>"""


def snapshot() -> str:
    session = SessionHost().create_session(compile_document(WAITING, source="waiting")).start()
    return dumps(encode_state(session.to_state()))


def session_row(sid: str, status: str, created: float, parent: str | None = None) -> dict:
    return {"id": sid, "flow": "waiting", "flow_hash": "h1", "flow_version": 1, "status": status,
            "parent_id": parent, "created_at": created, "updated_at": created + 1, "snapshot": snapshot()}


async def test_sessions_flows_inbox_and_outbox(db_url: str) -> None:
    store = await persistence.open_store(db_url)
    try:
        flow = {"hash": "h1", "name": "waiting", "version": 1, "kind": "flow", "text": WAITING, "base_dir": None,
                "created_at": 1.0}
        await session_rows.save_flow_version(store, flow)
        await session_rows.save_flow_version(store, {**flow, "text": "changed"})  # a version never changes
        assert await session_rows.load_flow_versions(store) == [flow]

        unit = UnitOfWork()
        unit.add(session_rows.SESSIONS, [session_row("a", "running", 10.0), session_row("b", "running", 20.0, "a")])
        unit.add(session_rows.INBOX, [{"id": 2, "session_id": "a", "event": "{}", "created_at": 1.0},
                                      {"id": 1, "session_id": "a", "event": "{}", "created_at": 1.0}])
        unit.add(session_rows.OUTBOX, [{"id": 3, "session_id": "b", "kind": "send", "payload": "{}",
                                        "created_at": 1.0}])
        await store.write(unit)
        unit = UnitOfWork()
        unit.add(session_rows.SESSIONS, [{**session_row("b", "finished", 99.0), "flow": "renamed?"}])
        unit.delete(session_rows.INBOX, [2])
        await store.write(unit)

        assert [r["id"] for r in await session_rows.load_running(store)] == ["a"]
        assert [r["id"] for r in await session_rows.load_inbox(store)] == [1]
        assert [r["kind"] for r in await session_rows.load_outbox(store)] == ["send"]
        b = await session_rows.get_session(store, "b")
        assert (b["status"], b["flow"], b["created_at"], b["updated_at"]) == ("finished", "waiting", 20.0, 100.0)
        assert await session_rows.stored_status(store, "b") == "finished"
        assert await session_rows.stored_status(store, "nobody") is None
        described = await session_rows.describe_stored(store, "a")
        assert described["active_states"] == ["waiting"] and described["datamodel"]["n"] == 42
        assert (described["sessionid"], described["status"], described["persistent"]) == ("a", "running", True)
        assert await session_rows.describe_stored(store, "nobody") is None
        listed = await session_rows.list_sessions(store, parent="a")
        assert listed == [{"sessionid": "b", "flow": "waiting", "version": 1, "status": "finished", "parent": "a",
                           "created_at": 20.0, "updated_at": 100.0}]
        assert [s["sessionid"] for s in await session_rows.list_sessions(store, limit=1, offset=1)] == ["b"]
        assert [s["sessionid"] for s in await session_rows.list_sessions(store, status="running")] == ["a"]
    finally:
        await store.close()


def record(cid: str, state: str, number: str = "+15551230000") -> dict:
    return {"_id": cid, "_service_name": "svc", "_callback_state": state, "_customer_number": number,
            "_desired_time": format_time(1000.0), "_expiration_time": format_time(2000.0),
            "_created_time": format_time(500.0 + len(cid)), "_ors_session_id": f"s-{cid}", "order": "A-17"}


async def test_callback_records_and_their_events(db_url: str) -> None:
    store = await persistence.open_store(db_url)
    try:
        unit = UnitOfWork()
        serial = store.new_id()
        unit.add(callback_rows.CALLBACKS, [callback_rows.record_row(record("c1", "QUEUED"), serial),
                                           callback_rows.record_row(record("c22", "COMPLETED", "+15559990000"),
                                                                    store.new_id())])
        first, second = store.new_id(), store.new_id()
        # Two rows (two batches' events), the later one first: a read orders them by id.
        unit.add(event_groups.CALLBACK_EVENT_GROUPS, [
            *event_groups.rows([event_groups.pending("c1", serial, second, 2.0, "later", {"n": 2})]),
            *event_groups.rows([event_groups.pending("c1", serial, first, 1.0, "first", {"n": 1})])])
        await store.write(unit)
        row = (await callback_rows.find(store, service="svc", states=["QUEUED"]))[0]
        assert (row["customer_number"], row["desired_time"], row["expiration_time"], row["session_id"]) == \
            ("+15551230000", 1000.0, 2000.0, "s-c1")
        assert await callback_rows.get_record(store, "c1") == record("c1", "QUEUED")
        assert await callback_rows.get_record(store, "nope") is None
        assert await callback_rows.load_open(store) == [record("c1", "QUEUED")]
        assert [r["id"] for r in await callback_rows.find(store, not_state="QUEUED")] == ["c22"]
        assert [r["id"] for r in await callback_rows.find(store, customer_number="+15559990000")] == ["c22"]
        assert [r["id"] for r in await callback_rows.find(store)] == ["c1", "c22"]  # by creation time
        assert [(r["name"], r["data"], r["created_at"]) for r in await event_groups.events_of(store, "c1")] == \
            [("first", {"n": 1}, 1.0), ("later", {"n": 2}, 2.0)]
        # An update replaces state and record, never the service or creation time.
        changed = {**record("c1", "COMPLETED"), "_service_name": "other", "_created_time": format_time(1.0)}
        unit = UnitOfWork()
        unit.add(callback_rows.CALLBACKS, [callback_rows.record_row(changed)])
        await store.write(unit)
        row = (await callback_rows.find(store, states=["COMPLETED"], service="svc"))[0]
        assert row["id"] == "c1" and row["created_at"] == 502.0 and json.loads(row["record"]) == changed
        assert row["serial"] == serial  # given by the first write, kept after
    finally:
        await store.close()


async def test_subscriptions_and_deliveries(db_url: str) -> None:
    store = await persistence.open_store(db_url)
    try:
        sub = Subscription(id="s1", subscriber_id="me", provider="default", type="httpcb", device_id="d",
                           properties={"url": "https://example.test/hook"}, filter="callback/*", expires_at=9.0,
                           created_at=1.0)
        d1 = Delivery(id=store.new_id(), key="k", type="httpcb", target="https://example.test/hook", device_id="d",
                      message={"m": 1}, webhook_id="w", max_attempts=3, created_at=1.0)
        d2 = Delivery(**{**asdict(d1), "id": store.new_id(), "status": "dead", "attempts": 3})
        unit = UnitOfWork()
        unit.add(notification_rows.SUBSCRIPTIONS, [sub.row()])
        unit.add(notification_rows.DELIVERIES, [d1.row(), d2.row()])
        await store.write(unit)
        (loaded,) = await notification_rows.load_subscriptions(store)
        assert Subscription(**json.loads(loaded["record"])) == sub and loaded["expires_at"] == 9.0
        assert [Delivery(**json.loads(r["record"])) for r in await notification_rows.load_deliveries(store)] == [d1, d2]
        assert [r["id"] for r in await notification_rows.load_deliveries(store, status="dead")] == [d2.id]
        assert [r["id"] for r in await notification_rows.load_deliveries(store, limit=1, offset=1)] == [d2.id]
        d1.attempts, d1.status = 1, "pending"
        unit = UnitOfWork()
        unit.add(notification_rows.DELIVERIES, [d1.row()])
        unit.delete(notification_rows.DELIVERIES, [d2.id])
        unit.delete(notification_rows.SUBSCRIPTIONS, ["s1"])
        await store.write(unit)
        assert [(r["id"], r["attempts"]) for r in await notification_rows.load_deliveries(store)] == [(d1.id, 1)]
        assert await notification_rows.load_subscriptions(store) == []
    finally:
        await store.close()


async def test_ids_continue_past_every_domains_sequenced_table(db_url: str) -> None:
    store = await persistence.open_store(db_url)
    unit = UnitOfWork()
    unit.add(event_groups.CALLBACK_EVENT_GROUPS, event_groups.rows([event_groups.pending("c", None, 70, 1.0, "e", {})]))
    unit.add(notification_rows.DELIVERIES, [{"id": 40, "ordering_key": "k", "status": "pending", "attempts": 0,
                                             "next_at": 0.0, "record": "{}", "updated_at": 1.0}])
    await store.write(unit)
    await store.close()
    store = await persistence.open_store(db_url)
    try:
        assert store.new_id() == 71
    finally:
        await store.close()
