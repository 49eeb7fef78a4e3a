"""The five push events and their rules, in simulated time, against the local FCM fake."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from engine.api.appkeys import RUNTIME
from engine.platform.adapter import Position
from tests.callbacks.conftest import ADMIN, BASE, CLIENT, create, record, wait_state
from tests.support.eventually import eventually, stays_false
from tests.support.fake_google import fcm_error

# One agent, 240 s calls: EWT = 240 s x position. The push threshold is 5 minutes.
SIMULATOR = """
time_scale = 100.0
ring_seconds = 8
treatment_seconds = 4
route_seconds = 1
default_handle_seconds = 240
[queues.Push_VQ]
agents = 1
handle_seconds = 240
[queues.Callback_VQ]
agents = 2
handle_seconds = 60
[queues.Empty_VQ]
agents = 0
handle_seconds = 60
[[dial_rules]]
pattern = '^\\+1555002'
sequence = ["no_answer", "answering_machine", "error"]
"""
QUEUE = {"Push_VQ": {"push_threshold_minutes": 5}}
PUSHY = {"_service": "callback", "_urs_virtual_queue": "Push_VQ"}


def device(n: int) -> str:
    return f"fcm-device-token-{n:04d}-" + "x" * 30


async def create_push(client, service: str, n: int, number: str | None = None, **extra) -> str:
    return await create(client, service, _customer_number=number or f"+1555070{n:04d}", _device_os="fcm",
                        _device_notification_id=device(n), **extra)


async def wait_events(google, n: int, count: int, timeout: float = 20.0) -> list[str]:
    return await eventually(lambda: google.events(device(n)), lambda got: len(got) >= count, timeout=timeout,
                            interval=0.05, expected=f"{count} pushes to device {n}")


async def wait_event(client, service: str, cid: str, name: str, timeout: float = 10.0) -> None:
    async def fired() -> list[str]:
        r = await client.get(f"{BASE}/{service}/{cid}/events", headers=CLIENT)
        return [e["event_id"] for e in await r.json()]

    await eventually(fired, lambda got: name in got, timeout=timeout, expected=f"{cid} to have fired {name}")
    # The platform request that followed the event has no outward sign of its own: give it a moment.
    await asyncio.sleep(0.1)


async def test_upcoming_once_and_never_when_already_close_at_creation(push_engine, google) -> None:
    client = await push_engine({"pushy": PUSHY}, QUEUE, SIMULATOR)
    ids = []
    for n, settled in enumerate(("_cbe_on_target_found", "_cbe_on_virtual_ixn_create",
                                 "_cbe_on_virtual_ixn_create", "_cbe_on_virtual_ixn_create")):
        ids.append(await create_push(client, "pushy", n))
        await wait_event(client, "pushy", ids[-1], settled)  # the queue holds it before the next arrives
    for cid in ids:
        await wait_state(client, cid, "COMPLETED", timeout=40)

    def upcoming() -> dict[int, int]:
        return {n: google.events(device(n)).count("CALLBACK_UPCOMING") for n in range(4)}

    # 0 takes the agent and 1 is next: both under 5 minutes at creation, so never pushed;
    # 2 (480 s) and 3 (720 s) cross the threshold later: pushed exactly once each.
    expected = {0: 0, 1: 0, 2: 1, 3: 1}
    await eventually(upcoming, lambda got: got == expected, timeout=5, expected=f"CALLBACK_UPCOMING pushes {expected}")
    await stays_false(lambda: upcoming() != expected and upcoming(), 0.3, what="a further CALLBACK_UPCOMING push")
    assert (await record(client, ids[1]))["_push_upcoming"] == "suppressed"
    message = next(m["message"] for m in google.messages if m["message"]["token"] == device(2))
    assert message["data"]["event"] == "CALLBACK_UPCOMING" and message["data"]["_id"] == ids[2]
    assert 0 < int(message["data"]["ewt"]) < 300 and message["notification"]["title"] == "Your callback is coming up"
    r = await client.get(f"/genesys/1/service/{ids[3]}/check-queue-position", headers=CLIENT)
    assert r.status == 400  # completed by now; the EWT was exposed there while it waited


async def test_no_upcoming_when_it_would_expire_first_then_purged(push_engine, google) -> None:
    client = await push_engine({"pushy": PUSHY, "short": {**PUSHY, "_ttl": 300}}, QUEUE, SIMULATOR)
    await create_push(client, "pushy", 0)
    await create_push(client, "pushy", 1)
    cid = await create_push(client, "short", 2)  # 480 s away, but it expires after 300 s
    done = await wait_state(client, cid, "COMPLETED", timeout=40)
    assert done["_callback_reason"] == "FAIL_TIMEOUT_TTL"
    events = await wait_events(google, 2, 1)
    assert events == ["CALLBACK_PURGED"]


async def test_no_upcoming_when_the_business_closes_first(push_engine, google) -> None:
    client = await push_engine({"pushy": PUSHY}, QUEUE, SIMULATOR)
    now = datetime.fromtimestamp(client.app[RUNTIME].manager.clock.now(), UTC)
    close = now + timedelta(minutes=6)
    today, end = now.date().isoformat(), close.strftime("%H:%M") if close.date() == now.date() else "24:00"
    hours = {"time_zone": "UTC", "weekly": {d: [] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
             "exceptions": {today: [f"00:00-{end}"]}}
    if close.date() != now.date():
        hours["exceptions"][close.date().isoformat()] = [f"00:00-{close.strftime('%H:%M')}"]
    cid = await third_in_line(client, "closing", hours)  # under 5 minutes only after ~4 minutes: past closing
    await wait_state(client, cid, "COMPLETED", timeout=40)
    assert "CALLBACK_UPCOMING" not in google.events(device(2))


async def third_in_line(client, name: str, hours: dict) -> str:
    """A push service ``name`` with these business hours; its callback (device 2) waits behind two
    of "pushy" (480 s away at first: under the 5-minute threshold once the first call ends)."""
    r = await client.put(f"/admin/business-hours/{name}", json=hours, headers=ADMIN)
    assert r.status == 200, await r.text()
    r = await client.put(f"/admin/services/{name}", json={**PUSHY, "_business_hours_service": name}, headers=ADMIN)
    assert r.status == 200, await r.text()
    await create_push(client, "pushy", 0)
    await create_push(client, "pushy", 1)
    return await create_push(client, name, 2)


async def test_upcoming_when_the_business_never_closes(push_engine, google) -> None:
    """Open round the clock, the business sets no deadline (it set "now", which skipped every push)."""
    client = await push_engine({"pushy": PUSHY}, QUEUE, SIMULATOR)
    hours = {"time_zone": "UTC", "weekly": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat",
                                                                         "sun")}}
    cid = await third_in_line(client, "always", hours)
    await wait_state(client, cid, "COMPLETED", timeout=40)
    assert google.events(device(2)).count("CALLBACK_UPCOMING") == 1, google.events(device(2))


async def test_attempt_failed_then_final_attempt_failed(push_engine, google) -> None:
    client = await push_engine({"dialling": {"_service": "callback", "_dial_retry_timeout": 30}}, None, SIMULATOR)
    cid = await create_push(client, "dialling", 1, number="+15550020001")
    done = await wait_state(client, cid, "COMPLETED", timeout=30)
    assert done["_callback_reason"] == "FAIL_CALL_TO_CUSTOMER"
    events = await wait_events(google, 1, 3)
    assert events == ["CALLBACK_ATTEMPT_FAILED", "CALLBACK_ATTEMPT_FAILED", "CALLBACK_FINAL_ATTEMPT_FAILED"]
    last = [m["message"]["data"] for m in google.messages if m["message"]["token"] == device(1)][-1]
    assert (last["attempt"], last["max_attempts"]) == ("3", "3")


async def test_callback_settings_set_the_attempts_and_purge(push_engine, google) -> None:
    queues = {"Callback_VQ": {"push_threshold_minutes": 5, "max_dial_attempts": 2, "retry_interval_seconds": 20},
              "Empty_VQ": {"purge_minutes": 2}}
    client = await push_engine({"dialling": {"_service": "callback"},
                                "stuck": {"_service": "callback", "_urs_virtual_queue": "Empty_VQ"}},
                               queues, SIMULATOR)
    cid = await create_push(client, "dialling", 1, number="+15550020002")
    await wait_state(client, cid, "COMPLETED", timeout=30)
    assert await wait_events(google, 1, 2) == ["CALLBACK_ATTEMPT_FAILED", "CALLBACK_FINAL_ATTEMPT_FAILED"]
    cid = await create_push(client, "stuck", 2)
    done = await wait_state(client, cid, "COMPLETED", timeout=30)
    assert done["_callback_reason"] == "PURGED"
    assert await wait_events(google, 2, 1) == ["CALLBACK_PURGED"]
    r = await client.get("/admin/callback-settings/Empty_VQ", headers=ADMIN)
    assert (await r.json())["purge_minutes"] == 2
    r = await client.put("/admin/callback-settings/Empty_VQ", json={"purge_minutes": -1}, headers=ADMIN)
    assert r.status == 400


async def test_ready_then_call_in_details(push_engine, google) -> None:
    client = await push_engine({"callin": {"_service": "callback", "_call_direction": "USERORIGINATED"},
                                "waiting": {"_service": "callback", "_call_direction": "USERORIGINATED",
                                            "_urs_virtual_queue": "Empty_VQ"}}, None, SIMULATOR)
    early = await create_push(client, "waiting", 9)
    r = await client.post(f"{BASE}/waiting/{early}/call-in", headers=CLIENT)
    assert r.status == 400 and "wait for CALLBACK_READY" in (await r.json())["message"]
    cid = await create_push(client, "callin", 1, _status_notification_language="fr-CA")
    assert await wait_events(google, 1, 1) == ["CALLBACK_READY"]
    r = await client.post(f"{BASE}/callin/{cid}/call-in", headers=CLIENT)
    details = await r.json()
    assert r.status == 200 and details["_access_code"] and details["_access_number"]
    events = await wait_events(google, 1, 2)
    assert events == ["CALLBACK_READY", "CALLBACK_CALL_IN_DETAILS"]
    pushed = [m["message"] for m in google.messages if m["message"]["token"] == device(1)][-1]
    assert pushed["data"]["access_code"] == details["_access_code"]
    assert pushed["notification"]["title"] == "Appelez-nous"
    assert details["_access_code"] in pushed["notification"]["body"]
    assert pushed["data"]["language"] == "fr"
    r = await client.post(f"{BASE}/callback/{cid}/call-in", headers=CLIENT)
    assert r.status == 404  # wrong service


async def test_languages_fall_back_to_english(push_engine, google) -> None:
    client = await push_engine({"dialling": {"_service": "callback", "_dial_retry_timeout": 30,
                                             "_max_dial_attempts": 1}}, None, SIMULATOR)
    for n, lang in ((1, "de-AT"), (2, "xx")):
        await create_push(client, "dialling", n, number=f"+155500200{n}0", _status_notification_language=lang)
    await wait_events(google, 1, 1)
    await wait_events(google, 2, 1)
    titles = {m["message"]["token"]: (m["message"]["notification"]["title"], m["message"]["data"]["language"])
              for m in google.messages}
    assert titles[device(1)] == ("Wir konnten Sie nicht erreichen", "de")
    assert titles[device(2)] == ("We could not reach you", "en")


async def test_the_language_follows_the_notification_precedence(push_engine, google) -> None:
    """Request > service > the transaction list's [properties] (SPEC 6; the list's value was never used)."""
    failing = {"_service": "callback", "_dial_retry_timeout": 30, "_max_dial_attempts": 1,
               "_callback_events_list": "german"}
    client = await push_engine({"listed": failing, "french": {**failing, "_status_notification_language": "fr"}},
                               None, SIMULATOR)
    r = await client.put("/admin/transaction-lists/german", headers=ADMIN,
                         data="[properties]\n_status_notification_language = de\n[_cbe_on_service_create]\n")
    assert r.status == 200, await r.text()
    await create_push(client, "listed", 1, number="+15550020010")
    await create_push(client, "french", 2, number="+15550020020")
    await create_push(client, "french", 3, number="+15550020030", _status_notification_language="en")
    for n in (1, 2, 3):
        await wait_events(google, n, 1)
    languages = {m["message"]["token"]: m["message"]["data"]["language"] for m in google.messages}
    assert languages == {device(1): "de", device(2): "fr", device(3): "en"}, languages


async def test_fcm_errors(push_engine, google) -> None:
    client = await push_engine({"dialling": {"_service": "callback", "_dial_retry_timeout": 30},
                                "once": {"_service": "callback", "_max_dial_attempts": 1}}, None, SIMULATOR)
    # UNREGISTERED: final, the token is dropped and nothing more is pushed to it
    google.by_device[device(1)] = (404, fcm_error(404, "UNREGISTERED", "NOT_FOUND"))
    cid = await create_push(client, "dialling", 1, number="+15550020003")
    await wait_state(client, cid, "COMPLETED", timeout=30)
    rec = await record(client, cid)
    assert "_device_notification_id" not in rec and rec["_device_token_dropped"] == "true"
    dead = (await (await client.get("/admin/dead-letters", headers=ADMIN)).json())["dead_letters"]
    assert [d["attempts"] for d in dead] == [1] and "UNREGISTERED" in dead[0]["last_error"]
    # 429 with Retry-After, then a 401 (credentials flagged failing), then success
    google.answers = [(429, fcm_error(429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"), {"Retry-After": "1"}),
                      (401, fcm_error(401, "THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED"), {})]
    started = asyncio.get_running_loop().time()
    cid = await create_push(client, "once", 2, number="+15550020004")  # dialling options are the service's
    await wait_events(google, 2, 1)
    assert asyncio.get_running_loop().time() - started >= 0.95
    shown = await (await client.get("/admin/push/credentials", headers=ADMIN)).json()
    assert shown["status"] == "ok"  # flagged failing on the 401, cleared by the next success
    bad = await client.post(f"{BASE}/dialling", headers=CLIENT, json={
        "_customer_number": "+15550020005", "_device_os": "apns", "_device_notification_id": device(5)})
    assert bad.status == 400 and "_device_os must be fcm" in (await bad.json())["message"]


async def test_no_upcoming_while_the_business_is_closed_even_with_no_wait(push_engine, google) -> None:
    """Closed now, the deadline is now: a callback at the front with no wait left (EWT 0) would
    finish "by then" (now + 0 is not past now), yet nobody can take it until the business opens."""
    client = await push_engine({"waiting": {**PUSHY, "_urs_virtual_queue": "Empty_VQ"}},
                               {"Empty_VQ": {"push_threshold_minutes": 5}}, SIMULATOR)
    runtime = client.app[RUNTIME]
    cid = await create_push(client, "waiting", 3)  # no agent in Empty_VQ: it waits in the queue
    await wait_event(client, "waiting", cid, "_cbe_on_virtual_ixn_create")
    session = (await record(client, cid))["_ors_session_id"]
    push, real_position = runtime.push, runtime.push.platform.position

    def at_the_front(session_id: str):
        found = real_position(session_id)
        return Position(found.queue, 1, 1, 0.0) if session_id == session and found is not None else found

    push.platform.position = at_the_front
    closed = {"time_zone": "UTC", "weekly": {d: [] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    always = {"time_zone": "UTC", "weekly": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat",
                                                                          "sun")}}
    for name, hours in (("closed", closed), ("always", always)):
        r = await client.put(f"/admin/business-hours/{name}", json=hours, headers=ADMIN)
        assert r.status == 200, await r.text()
    service = {**PUSHY, "_urs_virtual_queue": "Empty_VQ"}
    r = await client.put("/admin/services/waiting", json={**service, "_business_hours_service": "closed"},
                         headers=ADMIN)
    assert r.status == 200, await r.text()
    push.queue_changed("Empty_VQ")
    assert (cid, "CALLBACK_UPCOMING") not in push.pushed, "pushed while the business is closed"

    r = await client.put("/admin/services/waiting", json={**service, "_business_hours_service": "always"},
                         headers=ADMIN)
    assert r.status == 200, await r.text()
    push.queue_changed("Empty_VQ")  # the same callback, open now: the rule itself lets it through
    assert (cid, "CALLBACK_UPCOMING") in push.pushed
