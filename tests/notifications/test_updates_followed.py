"""A callback's update (PUT) is followed: the subscription made on its behalf moves to a new
notification target, starts when subscribe_notify is turned on, outlives a callback scheduled
days ahead and moves with a reschedule; a target the URL policy refuses is a 400 that changes
nothing; the queue and direction a running flow was started with cannot change under it."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.api.appkeys import RUNTIME
from engine.callbacks.records import parse_time
from engine.notifications.notifier import SUBSCRIPTION_MARGIN
from tests.callbacks.conftest import BASE, CLIENT, create, record, wait_state
from tests.support.eventually import settled

DAY = 86400.0


def at(client, seconds_ahead: float) -> str:
    now = client.app[RUNTIME].manager.clock.now()
    return datetime.fromtimestamp(now + seconds_ahead, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def notified(receiver, path: str = "/a", **extra) -> dict:
    return {"_service": "callback", "_enable_status_notification": "subscribe_notify",
            "_status_notification_type": "httpcb", "_status_notification_target": receiver.url(path), **extra}


def subscriptions_of(client, cid: str) -> list:
    return client.app[RUNTIME].notifications.subscriptions.for_callback(cid)


async def put(client, cid: str, body: dict, service: str = "svc"):
    r = await client.put(f"{BASE}/{service}/{cid}", json=body, headers=CLIENT)
    return r.status, await r.json()


async def test_a_new_target_takes_the_callbacks_next_events(make_engine, receiver) -> None:
    client = await make_engine({"svc": notified(receiver)})
    cid = await create(client, "svc", _customer_number="+15550810001", _desired_time=at(client, 3 * 3600))
    await receiver.wait_for(1, "/a")  # _cbe_on_callback_scheduled
    status, body = await put(client, cid, {"_status_notification_target": receiver.url("/b")})
    assert status == 200, body
    [sub] = subscriptions_of(client, cid)
    assert sub.device_id == receiver.url("/b")
    status, body = await put(client, cid, {"_new_desired_time": at(client, 2 * 3600)})
    assert status == 200, body
    await receiver.wait_for(1, "/b")
    assert [m["event_id"] for m in receiver.messages("/b")] == ["_cbe_on_callback_rescheduled"]
    r = await client.delete(f"{BASE}/svc/{cid}", headers=CLIENT)
    assert r.status == 200, await r.text()
    await wait_state(client, cid, "COMPLETED")
    b = await settled(lambda: [m["event_id"] for m in receiver.messages("/b")], 0.3, what="the messages at /b")
    assert "_cbe_on_callback_cancelled" in b
    assert [m["event_id"] for m in receiver.messages("/a")] == ["_cbe_on_callback_scheduled"]
    assert subscriptions_of(client, cid) == []  # gone with the callback, as before


async def test_subscribe_notify_turned_on_by_an_update(make_engine, receiver) -> None:
    client = await make_engine({"svc": {"_service": "callback"}})
    cid = await create(client, "svc", _customer_number="+15550810002", _desired_time=at(client, 3 * 3600))
    assert subscriptions_of(client, cid) == []
    status, body = await put(client, cid, {"_enable_status_notification": "subscribe_notify",
                                           "_status_notification_type": "httpcb",
                                           "_status_notification_target": receiver.url("/c")})
    assert status == 200, body
    status, body = await put(client, cid, {"_new_desired_time": at(client, 600)})
    assert status == 200, body
    await wait_state(client, cid, "COMPLETED", timeout=20)
    c = await settled(lambda: [m["event_id"] for m in receiver.messages("/c")], 0.3, what="the messages at /c")
    assert c[0] == "_cbe_on_callback_rescheduled" and "_cbe_on_service_exit" in c, c
    # ...and switched off again: the subscription goes
    cid2 = await create(client, "svc", _customer_number="+15550810003", _desired_time=at(client, 3 * 3600),
                        _enable_status_notification="subscribe_notify", _status_notification_target=receiver.url("/d"))
    assert len(subscriptions_of(client, cid2)) == 1
    status, body = await put(client, cid2, {"_enable_status_notification": "false"})
    assert status == 200, body
    assert subscriptions_of(client, cid2) == []


async def test_the_subscription_outlives_a_callback_scheduled_days_ahead(make_engine, receiver) -> None:
    client = await make_engine({"svc": notified(receiver)})
    cid = await create(client, "svc", _customer_number="+15550810004", _desired_time=at(client, 10 * DAY))
    [sub] = subscriptions_of(client, cid)
    rec = await record(client, cid)
    assert sub.expires_at >= parse_time(rec["_expiration_time"], "") + SUBSCRIPTION_MARGIN - 1
    status, body = await put(client, cid, {"_new_desired_time": at(client, 30 * DAY)})
    assert status == 200, body
    [moved] = subscriptions_of(client, cid)
    assert moved.expires_at >= parse_time(body["_expiration_time"], "") + SUBSCRIPTION_MARGIN - 1
    assert moved.expires_at > sub.expires_at + 19 * DAY


async def test_a_target_the_url_policy_refuses_changes_nothing(make_engine, receiver) -> None:
    client = await make_engine({"svc": notified(receiver)})
    cid = await create(client, "svc", _customer_number="+15550810005", _desired_time=at(client, 3 * 3600))
    before = await record(client, cid)
    status, body = await put(client, cid, {"_status_notification_target": "http://169.254.169.254/latest",
                                           "order": "B-2"})
    assert status == 400 and "_status_notification_target" in body["message"], body
    after = await record(client, cid)
    assert after == before and "order" not in after
    [sub] = subscriptions_of(client, cid)
    assert sub.device_id == receiver.url("/a")


async def test_the_queue_a_running_flow_started_with_cannot_change(make_engine, receiver) -> None:
    client = await make_engine({"svc": {"_service": "callback", "_urs_virtual_queue": "Empty_VQ",
                                        "_allowed_virtual_queues": "Callback_VQ"}})
    waiting = await create(client, "svc", _customer_number="+15550810006")  # no agent: it stays QUEUED
    await wait_state(client, waiting, "QUEUED")
    status, body = await put(client, waiting, {"_urs_virtual_queue": "Callback_VQ"})
    assert status == 400 and "_urs_virtual_queue cannot be changed once the callback's flow has started" in \
        body["message"], body
    assert (await record(client, waiting))["_urs_virtual_queue"] == "Empty_VQ"
    status, body = await put(client, waiting, {"_urs_virtual_queue": "Empty_VQ", "order": "C-3"})
    assert status == 200 and body["order"] == "C-3", body  # the same value is no change
    # a scheduled callback has no flow yet: its queue may change
    later = await create(client, "svc", _customer_number="+15550810007", _desired_time=at(client, 3 * 3600))
    status, body = await put(client, later, {"_urs_virtual_queue": "Callback_VQ"})
    assert status == 200 and body["_urs_virtual_queue"] == "Callback_VQ", body


async def test_an_update_cannot_aim_notifications_into_another_callbacks_flow(make_engine, receiver) -> None:
    """As at creation: an orscb target naming another callback's session is refused (found by review:
    a PUT remade the subscription and the victim's flow got this callback's status events)."""
    client = await make_engine({"svc": {"_service": "callback", "_urs_virtual_queue": "Empty_VQ"}})
    victim = await create(client, "svc", _customer_number="+15550810008")
    victim_session = (await wait_state(client, victim, "QUEUED"))["_ors_session_id"]
    mine = await create(client, "svc", _customer_number="+15550810009", _desired_time=at(client, 3 * 3600))
    status, body = await put(client, mine, {"_enable_status_notification": "subscribe_notify",
                                            "_status_notification_type": "orscb",
                                            "_status_notification_target": victim_session})
    assert status == 400 and "names the session of a callback" in body["message"], body
    assert subscriptions_of(client, mine) == []
    assert "_status_notification_target" not in await record(client, mine)


async def test_a_reschedule_that_meets_a_submit_on_its_way_changes_nothing(make_engine, receiver) -> None:
    """The capacity check awaits (the database, in a cluster); if the callback's flow starts
    meanwhile, the reschedule is refused and the keys it carried are not applied (found by review)."""
    client = await make_engine({"svc": {"_service": "callback", "_urs_virtual_queue": "Empty_VQ",
                                        "_allowed_virtual_queues": "Callback_VQ"}})
    cid = await create(client, "svc", _customer_number="+15550810010", _desired_time=at(client, 3 * 3600))
    service = client.app[RUNTIME].callbacks
    check = service._check_capacity

    async def submitted_meanwhile(*args, **kwargs):
        await check(*args, **kwargs)
        service._run_submit(cid)  # its timer fires while the reschedule waits

    service._check_capacity = submitted_meanwhile
    status, body = await put(client, cid, {"_new_desired_time": at(client, 2 * 3600),
                                           "_urs_virtual_queue": "Callback_VQ"})
    assert status == 400 and "only SCHEDULED callbacks can be rescheduled" in body["message"], body
    rec = await record(client, cid)
    assert rec["_callback_state"] == "QUEUED" and rec["_urs_virtual_queue"] == "Empty_VQ", rec
