"""Limits answer 503, business hours and bad input answer 400, unknown things 404; never a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.api.appkeys import RUNTIME
from tests.callbacks.conftest import ADMIN, BASE, CLIENT, create


def clock_iso(client, seconds_ahead: float) -> str:
    now = client.app[RUNTIME].manager.clock.now()
    return datetime.fromtimestamp(now + seconds_ahead, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def post(client, service: str, body, **kw):
    if isinstance(body, dict | list):
        r = await client.post(f"{BASE}/{service}", json=body, headers=CLIENT, **kw)
    else:
        r = await client.post(f"{BASE}/{service}", data=body, headers={**CLIENT, **kw.pop("headers", {})}, **kw)
    return r.status, await r.json()


async def test_capacity_of_a_time_bucket(cb_client) -> None:
    at = clock_iso(cb_client, 10 * 3600)
    for _ in range(2):  # the "tiny" service takes 2 per 60-minute bucket
        await create(cb_client, "tiny", _customer_number="+15550900100", _desired_time=at)
    status, body = await post(cb_client, "tiny", {"_customer_number": "+15550900100", "_desired_time": at})
    assert status == 503 and "is full" in body["message"] and body["exception"].endswith("LimitReached")
    r = await cb_client.get(f"{BASE}/tiny/availability?start={at}&end={clock_iso(cb_client, 13 * 3600)}",
                            headers=CLIENT)
    slots = await r.json()
    assert r.status == 200 and 2 <= len(slots) <= 4
    bucket = datetime.fromisoformat(at.replace("Z", "+00:00")).replace(minute=0, second=0, microsecond=0)
    key = bucket.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert slots[key] == 0 and all(v == 2 for k, v in slots.items() if k != key)


async def test_throttled_queue(cb_client) -> None:
    await create(cb_client, "tiny", _customer_number="+15550900101")  # Empty_VQ: it stays QUEUED
    status, body = await post(cb_client, "tiny", {"_customer_number": "+15550900102"})
    assert status == 503 and "_max_queued_callbacks_per_service" in body["message"]


async def test_outside_business_hours(cb_client) -> None:
    # 2026-12-25 is closed all day in config/business-hours/office.json; the 28th is a Monday.
    status, body = await post(cb_client, "office", {"_customer_number": "+15550900103",
                                                    "_desired_time": "2026-12-25T10:00:00.000Z"})
    assert status == 400 and "outside the business hours of office" in body["message"]
    assert "next opening 2026-12-28T08:00:00.000Z" in body["message"]
    r = await cb_client.get(f"{BASE}/office/availability?start=2026-12-24T00:00:00Z&end=2026-12-29T00:00:00Z"
                            f"&max-time-slots=500", headers=CLIENT)
    slots = await r.json()
    days = sorted({k[:10] for k in slots})
    assert days == ["2026-12-24", "2026-12-28"]  # Christmas Eve morning, then Monday
    assert min(k for k in slots if k.startswith("2026-12-24")) == "2026-12-24T08:00:00.000Z"


async def test_bad_input_is_a_clear_4xx(cb_client) -> None:
    past = (datetime.now(UTC) - timedelta(days=400)).isoformat().replace("+00:00", "Z")
    cases = [
        ({}, 400, "the request body is empty"),
        ({"_desired_time": clock_iso(cb_client, 60)}, 400, "_customer_number is required"),
        ({"_customer_number": "call me maybe"}, 400, "is not a phone number"),
        ({"_customer_number": ["+1555"]}, 400, "must be a phone number"),
        ({"_customer_number": "+15550900104", "_desired_time": "tomorrow at noon"}, 400, "not an ISO 8601 time"),
        ({"_customer_number": "+15550900104", "_desired_time": 12}, 400, "must be an ISO 8601 time"),
        ({"_customer_number": "+15550900104", "_desired_time": past}, 400, "is in the past"),
        ({"_customer_number": "+15550900104", "_callback_state": "COMPLETED"}, 400, "set by the service"),
        ({"_customer_number": "+15550900104", "bad key!": 1}, 400, "must start with a letter"),
        ({"_customer_number": "+15550900104", "nested": {"a": 1}}, 400, "values are strings"),
        ({"_customer_number": "+15550900104", "_call_direction": "SIDEWAYS"}, 400, "must be one of"),
        ({"_customer_number": "+15550900104", **{f"k{i}": i for i in range(300)}}, 400, "too many parameters"),
    ]
    for body, status, text in cases:
        if body:
            got, answer = await post(cb_client, "callback", body)
        else:
            got, answer = await post(cb_client, "callback", "", headers={"Content-Type": "application/json"})
        assert (got, text in answer["message"]) == (status, True), (body, answer)
        assert set(answer) == {"exception", "message"}
    got, answer = await post(cb_client, "callback", "{oops", headers={"Content-Type": "application/json"})
    assert got == 400 and "not valid JSON" in answer["message"]
    got, answer = await post(cb_client, "callback", "x" * 300_000, headers={"Content-Type": "application/json"})
    assert got == 413
    got, answer = await post(cb_client, "nosuch", {"_customer_number": "+15550900104"})
    assert got == 404 and "unknown callback service 'nosuch'" in answer["message"]
    # form bodies work too
    r = await cb_client.post(f"{BASE}/callback", data={"_customer_number": "+1 (555) 090-0105"}, headers=CLIENT)
    assert r.status == 200


async def test_unknown_callbacks_and_queries(cb_client) -> None:
    for method, path in (("GET", f"{BASE}/callback/nope"), ("DELETE", f"{BASE}/callback/nope"),
                         ("PUT", f"{BASE}/callback/nope"), ("GET", f"{BASE}/nosuch/abc"),
                         ("GET", f"{BASE}/callback/nope/events")):
        r = await cb_client.request(method, path, json={"x": "1"}, headers=CLIENT)
        assert r.status == 404, (method, path, await r.text())
        assert "exception" in await r.json()
    cid = await create(cb_client, "callback", _customer_number="+15550900106", tag="t1",
                       _desired_time=clock_iso(cb_client, 10 * 3600))  # stays SCHEDULED
    r = await cb_client.delete(f"{BASE}/expiring/{cid}", headers=CLIENT)  # right id, wrong service
    assert r.status == 404
    r = await cb_client.get(f"{BASE}?_customer_number=%2B15550900106", headers=CLIENT)
    assert [c["_id"] for c in await r.json()] == [cid]
    r = await cb_client.get(f"{BASE}/callback?tag=t1&_callback_state=!COMPLETED", headers=CLIENT)
    assert [c["_id"] for c in await r.json()] == [cid]
    r = await cb_client.get(f"{BASE}/callback?tag=t1&_callback_state=!SCHEDULED", headers=CLIENT)
    assert await r.json() == []
    r = await cb_client.get(f"{BASE}?tag=!t1&_customer_number=%2B15550900106", headers=CLIENT)
    assert await r.json() == []
    r = await cb_client.get(BASE, headers=CLIENT)
    assert r.status == 400
    r = await cb_client.get(f"{BASE}/callback/availability?start=soon", headers=CLIENT)
    assert r.status == 400 and "start" in (await r.json())["message"]
    r = await cb_client.get(f"{BASE}/callback/availability?number-of-days=99", headers=CLIENT)
    assert r.status == 400


async def test_services_through_the_admin_api(cb_client) -> None:
    r = await cb_client.get("/admin/services/callback", headers=ADMIN)
    body = await r.json()
    assert body["effective"]["_max_dial_attempts"] == 3 and body["effective"]["_ttl"] == 86400
    r = await cb_client.put("/admin/services/callback", json={"_max_dial_attempts": "zero"}, headers=ADMIN)
    assert r.status == 400 and "_max_dial_attempts must be a int" in (await r.json())["message"]
    r = await cb_client.get("/admin/services/callback", headers=ADMIN)
    assert (await r.json())["effective"]["_max_dial_attempts"] == 3  # unchanged
    r = await cb_client.put("/admin/services/fresh", json={"_service": "callback", "_max_dial_attempts": 1,
                                                           "x_campaign": "spring"}, headers=ADMIN)
    assert r.status == 200 and (await r.json())["effective"]["x_campaign"] == "spring"
    await create(cb_client, "fresh", _customer_number="+15550900107")
    r = await cb_client.put("/admin/services/other", json={"_business_hours_service": "nope"}, headers=ADMIN)
    assert r.status == 400 and "not defined" in (await r.json())["message"]
    r = await cb_client.get("/admin/services/nope", headers=ADMIN)
    assert r.status == 404
    r = await cb_client.get("/admin/services/callback", headers=CLIENT)
    assert r.status == 403
