"""Status notifications end to end: a real loopback receiver, the seed's formats and list."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from engine.api.appkeys import RUNTIME
from engine.callbacks.event_catalog import ALL_EVENTS, FLOW_EVENTS
from engine.notifications import webhooks
from tests.callbacks.conftest import ADMIN, CLIENT, create, wait_state
from tests.notifications.conftest import seed_events_cfg
from tests.support.eventually import eventually, settled, stays_false

HEADER_KEYS = {"event_id", "timestamp", "_service_id", "_service_name", "_callback_state"}


def svc(receiver, **extra) -> dict:
    return {"_service": "callback", "_enable_status_notification": "subscribe_notify",
            "_status_notification_type": "httpcb", "_status_notification_target": receiver.url(), **extra}


async def test_default_set_reports_every_event_with_the_seeds_attributes(make_engine, receiver) -> None:
    client = await make_engine({"notified": svc(receiver)})
    cid = await create(client, "notified", _customer_number="+15550800001")
    await wait_state(client, cid, "COMPLETED")
    await receiver.wait_for(15)
    msgs = await settled(receiver.messages, 0.2, what="the messages at /hook")
    ids = [m["event_id"] for m in msgs]
    assert [i for i in ids if i in FLOW_EVENTS] == [
        "_cbe_on_service_create", "_cbe_on_virtual_ixn_create", "_cbe_on_target_found", "_cbe_on_dial_init",
        "_cbe_on_dial_done", "_cbe_on_connect_treatment_start", "_cbe_on_customer_queued",
        "_cbe_on_route_to_agent", "_cbe_on_service_exit"]
    assert {"_cbe_on_callback_submitted", "_cbe_on_callback_queued", "_cbe_on_callback_status_updated"} <= set(ids)
    for m in msgs:
        assert set(m) >= HEADER_KEYS, m
        assert m["_service_id"] == cid and m["_service_name"] == "notified" and m["timestamp"].isdigit()
        allowed = HEADER_KEYS | set(ALL_EVENTS[m["event_id"]])
        assert set(m) <= allowed, (m["event_id"], set(m) - allowed)
    dial_done = next(m for m in msgs if m["event_id"] == "_cbe_on_dial_done")
    assert dial_done["c_call_result"] == 0 and dial_done["c_call_num_attempt"] == 1
    assert dial_done["c_dialed_number"] == "+15550800001" and dial_done["_customer_number"] == "+15550800001"
    create_msg = msgs[ids.index("_cbe_on_service_create")]
    assert create_msg["_urs_virtual_queue"] == "Callback_VQ" and create_msg["_callback_state"] == "QUEUED"
    exit_msg = msgs[ids.index("_cbe_on_service_exit")]
    assert exit_msg["c_termination_type"] == "COMPLETED.AGENT_CONNECTED"
    # the httpcb body is {"deviceId", "message"} and every delivery carries a webhook-id
    first = receiver.received[0]
    assert set(first.body) == {"deviceId", "message"} and first.body["deviceId"] == receiver.url()
    assert first.headers["webhook-id"].startswith("msg_")
    # the subscription made on the client's behalf is gone once the callback ended
    subs = client.app[RUNTIME].notifications.subscriptions.items
    assert not [s for s in subs.values() if s.callback_id == cid]


async def test_the_seeds_gms_events_list_applies(make_engine, receiver) -> None:
    cfg = seed_events_cfg()
    client = await make_engine({"listed": svc(receiver, _callback_events_list="GMS_Events",
                                              _vq_for_outbound_calls="Outbound_VQ")})
    r = await client.put("/admin/transaction-lists/GMS_Events", data=cfg, headers=ADMIN)
    body = await r.json()
    assert r.status == 200, body
    assert body["warnings"] == [] and sorted(body["events"]) == sorted(FLOW_EVENTS)
    cid = await create(client, "listed", _customer_number="+15550800002")
    await wait_state(client, cid, "COMPLETED")
    await receiver.wait_for(9)
    msgs = await settled(receiver.messages, 0.2, what="the messages at /hook")
    assert [m["event_id"] for m in msgs] == list(FLOW_EVENTS)  # only its events: no _cbe_on_callback_*
    for m in msgs:
        assert m["name1"] == "value1" and m["name2"] == "value2"  # notify_custom
    route = next(m for m in msgs if m["event_id"] == "_cbe_on_route_to_agent")
    assert route["_urs_virtual_queue"] == "Callback_VQ" and route["c_agent_id"] and route["c_agent_extension"]
    assert set(route) == HEADER_KEYS | {"_customer_number", "_urs_virtual_queue", "c_agent_id",
                                        "c_agent_extension", "name1", "name2"}
    queued = next(m for m in msgs if m["event_id"] == "_cbe_on_customer_queued")
    assert queued["_vq_for_outbound_calls"] == "Outbound_VQ" and queued["c_dialed_number"] == "+15550800002"


async def test_precedence_request_over_service_over_list(make_engine, receiver) -> None:
    lists = {"props": "[properties]\n_enable_status_notification = subscribe_notify\n"
                      f"_status_notification_type = httpcb\n_status_notification_target = {receiver.url('/list')}\n"
                      "[_cbe_on_service_create]\nnotify_params = _customer_number\n"}
    client = await make_engine({
        "from_list": {"_service": "callback", "_callback_events_list": "props"},
        "from_service": {"_service": "callback", "_callback_events_list": "props",
                         "_status_notification_target": receiver.url("/service")},
    }, lists=lists)
    await create(client, "from_list", _customer_number="+15550800003")
    await create(client, "from_service", _customer_number="+15550800004")
    await create(client, "from_service", _customer_number="+15550800005",
                 _status_notification_target=receiver.url("/request"))
    # a request may also switch notifications off entirely
    await create(client, "from_service", _customer_number="+15550800006", _enable_status_notification="false")
    await receiver.wait_for(1, "/list")
    await receiver.wait_for(1, "/service")
    await receiver.wait_for(1, "/request")

    def by_path() -> dict[str, list[str]]:
        return {p: [m["_customer_number"] for m in receiver.messages(p)] for p in ("/list", "/service", "/request")}

    # one each, and nothing from the callback that switched notifications off
    expected = {"/list": ["+15550800003"], "/service": ["+15550800004"], "/request": ["+15550800005"]}
    assert by_path() == expected
    await stays_false(lambda: by_path() != expected and by_path(), 0.3, what="another delivery")


async def test_a_create_may_ask_for_the_debug_mode(make_engine, receiver, caplog) -> None:
    """Seed 000: ``_status_notification_debug`` is one of the "additional parameters to your Callback
    queries": the messages carry ``_debug`` and each is logged, the target without its query."""
    caplog.set_level("INFO", logger="engine.notifications")
    client = await make_engine({"notified": svc(receiver)})
    target = receiver.url("/debug") + "?token=secret-in-query"
    cid = await create(client, "notified", _customer_number="+15550800010", _status_notification_debug="true",
                       _status_notification_target=target)
    plain = await create(client, "notified", _customer_number="+15550800011")
    await wait_state(client, cid, "COMPLETED")
    await wait_state(client, plain, "COMPLETED")
    await receiver.wait_for(15, "/debug")
    debug = await settled(lambda: receiver.messages("/debug"), 0.2, what="the debug messages")
    assert all(m["_debug"]["list"] == "(default set)" and m["_debug"]["tag"].endswith(cid) for m in debug), debug[0]
    assert not [m for m in receiver.messages() if "_debug" in m]  # the other callback's messages have none
    lines = [r.getMessage() for r in caplog.records if "status notification _cbe_on_" in r.getMessage()]
    assert len(lines) == len(debug) and all(cid in line for line in lines), lines[:3]
    assert receiver.url("/debug") in lines[0] and "secret-in-query" not in caplog.text


async def test_notify_publishes_only_to_client_subscriptions(make_engine, receiver) -> None:
    client = await make_engine({"pub": {"_service": "callback", "_enable_status_notification": "notify",
                                        "_callback_events_list": "one"}},
                               lists={"one": "[_cbe_on_service_create]\nnotify_params = _customer_number\n"})
    await create(client, "pub", _customer_number="+15550800007")
    await stays_false(lambda: receiver.received, 0.5, what="a delivery with nobody subscribed")
    r = await client.post("/genesys/1/notification/subscription", headers=CLIENT, json={
        "subscriberId": "app-1", "providerName": "default", "filter": "callback/pub/*", "expire": 60,
        "notificationDetails": {"deviceId": "phone-42", "type": "httpcb",
                                "properties": {"url": receiver.url("/mine")}}})
    sub = await r.json()
    assert r.status == 200 and sub["id"]
    await create(client, "pub", _customer_number="+15550800008")
    [msg] = await receiver.wait_for(1, "/mine")
    assert msg["_customer_number"] == "+15550800008"
    assert receiver.received[0].body["deviceId"] == "phone-42"
    # the callback/ tag space is the engine's; clients publish under tags of their own
    r = await client.post("/genesys/1/notification/publish", headers=CLIENT,
                          json={"tag": "callback/pub/anything", "message": {"hello": "world"}})
    assert r.status == 403
    r = await client.post("/genesys/1/notification/subscription", headers=CLIENT, json={
        "subscriberId": "app-1", "providerName": "default", "filter": "apps/pub/*", "expire": 60,
        "notificationDetails": {"deviceId": "phone-42", "type": "httpcb",
                                "properties": {"url": receiver.url("/mine")}}})
    own = await r.json()
    # publish through the API reaches that subscription; unsubscribing stops it
    r = await client.post("/genesys/1/notification/publish", headers=CLIENT,
                          json={"tag": "apps/pub/anything", "message": {"hello": "world"}})
    assert (await r.json())["deliveries"] == 1
    await receiver.wait_for(2, "/mine")
    r = await client.delete(f"/genesys/1/notification/subscription/{own['id']}", headers=CLIENT)
    assert r.status == 200
    r = await client.post("/genesys/1/notification/publish", headers=CLIENT,
                          json={"tag": "apps/pub/anything", "message": {"hello": "again"}})
    assert (await r.json())["deliveries"] == 0


async def test_orscb_raises_the_event_in_a_monitoring_session(make_engine, receiver) -> None:
    client = await make_engine({})
    r = await client.post("/scxml/session/start", json={"src": "monitor"}, headers=CLIENT)
    monitor = (await r.json())["sessionid"]
    r = await client.put("/admin/services/watched", headers=ADMIN, json={
        "_service": "callback", "_enable_status_notification": "subscribe_notify",
        "_status_notification_type": "orscb", "_status_notification_target": monitor})
    assert r.status == 200
    cid = await create(client, "watched", _customer_number="+15550800009")
    await wait_state(client, cid, "COMPLETED")

    async def monitor_saw() -> list[dict]:
        q = await (await client.get(f"/scxml/session/{monitor}/query", headers=CLIENT)).json()
        return q["datamodel"]["seen"]

    seen = await eventually(monitor_saw, lambda seen: any(m["event_id"] == "_cbe_on_service_exit" for m in seen),
                            timeout=5, expected="_cbe_on_service_exit seen by the monitor",
                            seen=lambda seen: [m["event_id"] for m in seen])
    flow = [m["event_id"] for m in seen if m["event_id"] in FLOW_EVENTS]
    assert flow == list(FLOW_EVENTS) and all(m["_service_id"] == cid for m in seen)


async def test_receiver_that_fails_then_recovers_gets_everything_in_order(make_engine, receiver) -> None:
    receiver.answers = [(500, {}), (503, {}), (502, {})]
    client = await make_engine({"flaky": svc(receiver, _callback_events_list="two")},
                               lists={"two": "[_cbe_on_service_create]\nnotify_params=_customer_number\n"
                                             "[_cbe_on_virtual_ixn_create]\nnotify_params=_service_name\n"})
    await create(client, "flaky", _customer_number="+15550800010")
    msgs = await receiver.wait_for(2, timeout=20)
    assert [m["event_id"] for m in msgs] == ["_cbe_on_service_create", "_cbe_on_virtual_ixn_create"]


async def test_429_retry_after_is_honoured(make_engine, receiver) -> None:
    receiver.answers = [(429, {"Retry-After": "1"})]
    client = await make_engine({"polite": svc(receiver, _callback_events_list="one")},
                               lists={"one": "[_cbe_on_service_create]\nnotify_params=_customer_number\n"})
    started = asyncio.get_running_loop().time()
    await create(client, "polite", _customer_number="+15550800011")
    await receiver.wait_for(1, timeout=10)
    assert asyncio.get_running_loop().time() - started >= 0.95


async def test_dead_letter_then_replay(make_engine, receiver) -> None:
    receiver.default_status = 500
    client = await make_engine({"doomed": svc(receiver, _callback_events_list="one", _max_notify_delivery_attempts=3)},
                               lists={"one": "[_cbe_on_service_create]\nnotify_params=_customer_number\n"})
    await create(client, "doomed", _customer_number="+15550800012")

    async def dead_letters() -> list[dict]:
        return (await (await client.get("/admin/dead-letters", headers=ADMIN)).json())["dead_letters"]

    [letter] = await eventually(dead_letters, timeout=8, expected="a dead letter")
    assert letter["attempts"] == 3 and letter["last_error"] == "HTTP 500" and "secret" not in letter
    assert letter["message"]["event_id"] == "_cbe_on_service_create"
    receiver.default_status = 200
    r = await client.post(f"/admin/dead-letters/{letter['id']}/replay", headers=ADMIN)
    assert r.status == 200
    [msg] = await receiver.wait_for(1)
    assert msg["_customer_number"] == "+15550800012"
    assert receiver.received[0].headers["webhook-id"] == letter["webhook_id"]  # same id: a receiver can dedupe
    assert (await (await client.get("/admin/dead-letters", headers=ADMIN)).json())["dead_letters"] == []
    r = await client.post("/admin/dead-letters/999999/replay", headers=ADMIN)
    assert r.status == 404


async def test_standard_webhooks_signature_when_the_target_has_a_secret(make_engine, receiver) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    client = await make_engine({"signed": svc(receiver, _callback_events_list="one")},
                               lists={"one": "[_cbe_on_service_create]\nnotify_params=_customer_number\n"},
                               notifications={"secrets": {receiver.url(""): secret}})
    await create(client, "signed", _customer_number="+15550800013")
    await receiver.wait_for(1)
    got = receiver.received[0]
    h = got.headers
    assert webhooks.verify(secret, h["webhook-id"], h["webhook-timestamp"], got.raw, h["webhook-signature"])
    assert not webhooks.verify("whsec_AAAA", h["webhook-id"], h["webhook-timestamp"], got.raw, h["webhook-signature"])


async def test_lists_and_subscriptions_refuse_bad_input(make_engine, receiver) -> None:
    client = await make_engine({})
    bad = "[properties]\n_enable_status_notification = notify\n[_cbe_on_dial_done]\nnotify_custom = {oops\n"
    r = await client.put("/admin/transaction-lists/bad", data=bad, headers=ADMIN)
    body = await r.json()
    assert r.status == 400 and body["section"] == "_cbe_on_dial_done" and body["line"] == 4
    assert "line 4, section [_cbe_on_dial_done]" in body["message"]
    r = await client.get("/admin/transaction-lists/bad", headers=ADMIN)
    assert r.status == 404  # nothing was stored
    odd = "[_cbe_on_dial_done]\nnotify_params = c_call_result\n[_cbe_on_coffee_break]\nnotify_params = x\n"
    r = await client.put("/admin/transaction-lists/odd", data=odd, headers=ADMIN)
    body = await r.json()
    assert r.status == 200 and body["events"] == ["_cbe_on_dial_done"]
    assert any("_cbe_on_coffee_break is not a status event" in w for w in body["warnings"])
    good = {"filter": "callback/*", "notificationDetails": {"deviceId": receiver.url(), "type": "httpcb"}}
    for body, text in (({**good, "expire": 10}, "at least 30"),
                       ({**good, "notificationDetails": {"deviceId": "x", "type": "pigeon"}}, "type must be"),
                       ({**good, "notificationDetails": {"deviceId": "ftp://x", "type": "httpcb"}}, "http(s) URL"),
                       ({k: v for k, v in good.items() if k != "filter"}, "filter is required")):
        r = await client.post("/genesys/1/notification/subscription", json=body, headers=CLIENT)
        assert r.status == 400 and text in (await r.json())["message"], body
    r = await client.delete("/genesys/1/notification/subscription/nope", headers=CLIENT)
    assert r.status == 404
    r = await client.post("/genesys/1/notification/publish", json={"message": {}}, headers=CLIENT)
    assert r.status == 400


async def test_settings_follow_a_service_changed_while_the_callback_waits(make_engine, receiver) -> None:
    """A callback's notification settings are resolved once and kept, but resolved again when
    the service it names is replaced or the record's own keys change."""
    client = await make_engine({"later": svc(receiver)})
    now = client.app[RUNTIME].manager.clock.now()
    desired = datetime.fromtimestamp(now + 3600, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    first = await create(client, "later", _customer_number="+15550800101", _desired_time=desired)
    second = await create(client, "later", _customer_number="+15550800102", _desired_time=desired)

    def cancelled(cid: str) -> bool:
        return any(m["_service_id"] == cid and m["event_id"] == "_cbe_on_callback_cancelled"
                   for m in receiver.messages())

    await eventually(lambda: {m["_service_id"] for m in receiver.messages()} == {first, second},
                     expected="both callbacks reported")
    r = await client.put("/admin/services/later", json=svc(receiver, _enable_status_notification="false"),
                         headers=ADMIN)
    assert r.status == 200, await r.text()
    r = await client.delete(f"/genesys/1/service/callback/later/{first}", headers=CLIENT)
    assert r.status == 200, await r.text()
    await stays_false(lambda: cancelled(first), 0.3, what="a notification after the service switched them off")
    # the record's own key wins over the service: switched on again for the second one
    client.app[RUNTIME].callbacks.records[second]["_enable_status_notification"] = "subscribe_notify"
    r = await client.delete(f"/genesys/1/service/callback/later/{second}", headers=CLIENT)
    assert r.status == 200, await r.text()
    await eventually(lambda: cancelled(second), expected="the second callback reported cancelled")
