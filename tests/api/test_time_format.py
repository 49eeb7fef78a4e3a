"""Issue 12 item 5: every timestamp the API answers is ISO 8601 UTC with milliseconds, whatever
the resource (the seed's status event ``timestamp`` alone stays epoch seconds as a string); a
desired time is read on the engine clock, and one refused as past names both clocks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.api.openapi import document
from engine.app import create_app
from engine.callbacks.records import format_time
from tests.api.conftest import make_settings
from tests.callbacks.conftest import BASE, SCALE, create, record, wait_state
from tests.push import conftest as push_fixtures
from tests.push.conftest import ADMIN, CLIENT
from tests.support.eventually import eventually

# An engine with FCM credentials set, against local fakes of Google (the push tests' fixtures).
google, key_pair, push_engine = push_fixtures.google, push_fixtures.key_pair, push_fixtures.push_engine

ISO_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# A field named like a time: ``*_time``, ``*_at``, ``expires``, ``clock``, ``created``... (not
# durations such as ``uptime``, ``ring_seconds`` or ``time_scale``).
TIME_NAME = re.compile(r"(^|_)(time|at|expires|clock|created|rotated|last_used|since|now|eta|timestamp)$")
SEED_EVENT_TIME = "timestamp"  # the status event's Unix seconds, as a string (seed 000)
NOT_THE_APIS = frozenset({"datamodel", "config"})  # a flow's own variables; settings (durations)
SUB = "/genesys/1/notification/subscription"


def time_fields(value: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """(path, field name, value) of every time-named field in an answer, nested ones too."""
    found: list[tuple[str, str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in NOT_THE_APIS:
                continue
            if isinstance(key, str) and TIME_NAME.search(key):
                found.append((f"{path}.{key}", key, item))
            found += time_fields(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += time_fields(item, f"{path}[{n}]")
    return found


def wrong_times(answers: dict[str, Any]) -> list[str]:
    bad = []
    for what, body in answers.items():
        for path, name, value in time_fields(body, what):
            if name == SEED_EVENT_TIME:
                ok = isinstance(value, str) and value.isdigit()
            else:
                ok = value is None or (isinstance(value, str) and bool(ISO_MS_UTC.match(value)))
            if not ok:
                bad.append(f"{path} = {value!r}")
    return bad


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def get(client, path: str, headers: dict[str, str] = ADMIN, status: int = 200) -> Any:
    r = await client.get(path, headers=headers)
    assert r.status == status, f"{path}: {r.status} {await r.text()}"
    return await r.json()


async def test_every_resource_answers_iso_times_with_milliseconds(push_engine) -> None:
    client = await push_engine()
    answers: dict[str, Any] = {}

    # callbacks: one to call in (its access code expires), one waiting in a queue, one scheduled
    # then rescheduled and cancelled
    callin = await create(client, "callin", _customer_number="+15550900106")
    await eventually(lambda: record(client, callin), lambda rec: rec.get("_access_code"), timeout=8,
                     expected="an _access_code on the record")
    r = await client.post(f"{BASE}/callin/{callin}/call-in", headers=CLIENT)
    assert r.status == 200, await r.text()
    answers["call-in"] = await r.json()
    answers["callin record"] = await get(client, f"{BASE}/callin/{callin}", CLIENT)
    assert answers["callin record"]["_access_expires"] == answers["call-in"]["_access_expires"]
    waiting = await create(client, "tiny", _customer_number="+15550900107")
    await wait_state(client, waiting, "QUEUED")
    answers["position"] = await get(client, f"/genesys/1/service/{waiting}/check-queue-position", CLIENT)
    engine_now = parse((await get(client, "/health"))["clock"])
    later = format_time((engine_now + timedelta(hours=2)).timestamp())
    scheduled = await create(client, "callback", _customer_number="+15550900108", _desired_time=later)
    r = await client.put(f"{BASE}/callback/{scheduled}", headers=CLIENT, json={
        "_new_desired_time": format_time((engine_now + timedelta(hours=3)).timestamp())})
    assert r.status == 200, await r.text()
    answers["rescheduled"] = await r.json()
    r = await client.delete(f"{BASE}/callback/{scheduled}", headers=CLIENT)
    assert r.status == 200
    answers["cancelled"] = await r.json()
    answers["records of a service"] = await get(client, f"{BASE}/tiny?_callback_state=QUEUED", CLIENT)
    answers["records"] = await get(client, f"{BASE}?_id={scheduled}", CLIENT)
    answers["events"] = await get(client, f"{BASE}/callin/{callin}/events", CLIENT)
    assert answers["events"] and all(e[SEED_EVENT_TIME].isdigit() for e in answers["events"])

    # subscriptions, and a dead letter (an orscb target that runs no session gives up at once)
    r = await client.post(SUB, headers=CLIENT, json={
        "subscriberId": "app", "providerName": "p", "filter": "apps/t", "expire": 600,
        "notificationDetails": {"deviceId": "no-such-session", "type": "orscb"}})
    assert r.status == 200, await r.text()
    answers["subscribed"] = sub = await r.json()
    answers["subscriptions"] = await get(client, SUB, CLIENT)
    answers["subscription"] = await get(client, f"{SUB}/{sub['id']}", CLIENT)
    r = await client.post("/genesys/1/notification/publish", headers=ADMIN,
                          json={"tag": "apps/t", "message": {"text": "hi"}})
    assert (await r.json())["deliveries"] == 1
    answers["dead letters"] = await eventually(lambda: get(client, "/admin/dead-letters"),
                                               lambda got: got["dead_letters"], timeout=8, expected="a dead letter")

    # sessions
    r = await client.post("/scxml/session/start", json={"src": "hello"}, headers=ADMIN)
    assert r.status == 200, await r.text()
    sid = (await r.json())["sessionid"]
    answers["session"] = await get(client, f"/scxml/session/{sid}/query")
    answers["sessions"] = await eventually(lambda: get(client, "/scxml/sessions?flow=hello"),
                                           lambda got: got["sessions"] and got["sessions"][0]["updated_at"],
                                           timeout=8, expected="the session stored")

    # keys (used, then rotated), credentials, flows, transaction lists, health, the simulator
    r = await client.post("/admin/keys", json={"name": "ops", "role": "monitor"}, headers=ADMIN)
    assert r.status == 201
    answers["new key"] = await r.json()
    await get(client, "/admin/services", {"x-api-key": answers["new key"]["key"]})  # now it has been used
    r = await client.post("/admin/keys/ops/rotate", headers=ADMIN)
    answers["rotated key"] = await r.json()
    answers["keys"] = await get(client, "/admin/keys")
    answers["key"] = await get(client, "/admin/keys/env-client")
    answers["credentials"] = await get(client, "/admin/push/credentials")
    answers["flows"] = await get(client, "/admin/flows")
    answers["flow"] = await get(client, "/admin/flows/hello")
    answers["transaction lists"] = await get(client, "/admin/transaction-lists")
    answers["health"] = await get(client, "/health")
    answers["readiness"] = await get(client, "/health/ready")
    answers["simulator"] = await get(client, "/admin/simulator")

    assert wrong_times(answers) == []
    # Every kind of time was there to check (a walk over nothing would pass too).
    seen = {name for _, name, value in time_fields(answers) if value is not None}
    assert seen >= {"_access_expires", "_desired_time", "_expiration_time", "_created_time", "_updated_time",
                    "_completed_time", "_submitted_time", "expires", "created_at", "updated_at", "next_at",
                    "created", "rotated", "last_used", "clock", "wall_clock", "now", "since", "timestamp"}, seen
    # The engine clock runs SCALE times faster: ahead of the wall clock, which the health answer also gives.
    health = answers["health"]
    assert parse(health["clock"]) > parse(health["wall_clock"]) and health["time_scale"] == SCALE
    letter = answers["dead letters"]["dead_letters"][0]
    assert abs(parse(letter["created_at"]) - datetime.now(UTC)) < timedelta(minutes=1)  # the wall clock


async def test_an_uploaded_flow_version_answers_an_iso_time(engine_client) -> None:
    """(On an engine of its own: an upload writes the flow into the flows folder, here a temporary one.)"""
    client = await engine_client()
    text = (await (await client.get("/admin/flows/hello?format=scxml", headers=ADMIN)).text())
    r = await client.put("/admin/flows/timed", headers=ADMIN, data=text.replace('name="hello"', 'name="timed"'))
    assert r.status == 200, await r.text()
    answers = {"new flow version": await r.json(), "flow": await get(client, "/admin/flows/timed")}
    assert wrong_times(answers) == [] and ISO_MS_UTC.match(answers["new flow version"]["created_at"])
    assert answers["flow"]["versions"][0]["created_at"] == answers["new flow version"]["created_at"]


def test_the_walk_finds_wrong_shapes() -> None:
    """The check above fails on each old shape: epoch numbers, epoch strings outside the seed's
    event timestamp, ISO without milliseconds or with an offset."""
    assert wrong_times({"x": {"created_at": 1767225600.5, "ok_at": "2026-01-01T00:00:00.000Z"}}) == \
        ["x.created_at = 1767225600.5"]
    assert wrong_times({"x": [{"nested": {"expires": "1767225600"}}, {"timestamp": "1767225600"}]}) == \
        ["x[0].nested.expires = '1767225600'"]
    assert wrong_times({"x": {"clock": "2026-01-01T00:00:00Z", "_eta": "2026-01-01T00:00:00.000+00:00",
                              "timestamp": 1767225600, "uptime": 3.5, "time_scale": 20}}) == [
        "x.clock = '2026-01-01T00:00:00Z'", "x._eta = '2026-01-01T00:00:00.000+00:00'", "x.timestamp = 1767225600"]


async def test_a_desired_time_is_read_on_the_engine_clock_and_a_refusal_names_both_clocks(push_engine) -> None:
    client = await push_engine()

    async def clocks() -> tuple[datetime, datetime]:
        health = await get(client, "/health")
        return parse(health["clock"]), parse(health["wall_clock"])

    # At 200x the engine clock soon runs minutes ahead of the wall clock.
    await eventually(clocks, lambda got: got[0] - got[1] > timedelta(minutes=5), timeout=10,
                     expected="the engine clock 5 minutes ahead")
    engine_now, wall_now = await clocks()
    wall_soon = format_time((wall_now + timedelta(minutes=2)).timestamp())  # "in 2 minutes" by a wall clock
    r = await client.post(f"{BASE}/callback", json={"_customer_number": "+15550900109", "_desired_time": wall_soon},
                          headers=CLIENT)
    body = await r.json()
    assert r.status == 400 and body["exception"].endswith("CallbackBadRequest")
    message = body["message"]
    assert message.startswith(f"_desired_time {wall_soon} is in the past: desired times are read on the engine clock")
    said = dict(re.findall(r"(engine|wall) clock now (\S+?)[,;)]", message))
    assert set(said) == {"engine", "wall"} and "time_scale 200" in message
    assert parse(said["engine"]) >= engine_now and abs(parse(said["wall"]) - wall_now) < timedelta(seconds=30)

    engine_soon = format_time((parse(said["engine"]) + timedelta(hours=1)).timestamp())  # relative to the engine
    r = await client.post(f"{BASE}/callback", json={"_customer_number": "+15550900109", "_desired_time": engine_soon},
                          headers=CLIENT)
    assert r.status == 200, await r.text()
    rec = await record(client, (await r.json())["_id"])
    assert rec["_desired_time"] == engine_soon and rec["_callback_state"] == "SCHEDULED"

    r = await client.put(f"{BASE}/callback/{rec['_id']}", json={"_new_desired_time": wall_soon}, headers=CLIENT)
    message = (await r.json())["message"]
    assert r.status == 400 and message.startswith(f"_new_desired_time {wall_soon} is in the past")
    assert "engine clock now" in message and "wall clock now" in message


def schema_times(value: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """(path, property name, schema) of every time-named property the OpenAPI document declares."""
    found: list[tuple[str, str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.get("properties", {}).items():
            if TIME_NAME.search(key):
                found.append((f"{path}.{key}", key, item))
        for key, item in value.items():
            found += schema_times(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += schema_times(item, f"{path}[{n}]")
    return found


def test_the_document_declares_every_time_as_date_time(tmp_path) -> None:
    declared = schema_times(document(create_app(make_settings(tmp_path))))
    names = {name for _, name, _ in declared}
    assert names >= {"_desired_time", "_access_expires", "expires", "created_at", "next_at", "created", "last_used",
                     "clock", "wall_clock", "now", "_eta", "timestamp"}, names
    for path, name, schema in declared:
        if name == SEED_EVENT_TIME:
            assert schema["type"] == "string" and schema["pattern"] == r"^\d+$", path
        else:
            assert schema.get("format") == "date-time" and schema.get("examples"), path
            if "pattern" in schema:  # what the engine answers: the GMS format exactly
                assert schema["pattern"] == ISO_MS_UTC.pattern and ISO_MS_UTC.match(schema["examples"][0]), path
