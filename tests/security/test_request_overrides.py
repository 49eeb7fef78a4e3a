"""Issue 9 item 5: requests override only what they may, and client values are data.

A real engine over loopback HTTP with the simulator (as the callback tests build it): a create may
set only the documented request options, each checked; dialling, capacity and TTL options stay the
service's; user keys reach the flow only under ``_data``; far-future times answer 400, never 500.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from engine.app import create_app
from engine.callbacks.options import OPTIONS, REQUEST_OPTIONS, SERVICE_ONLY
from engine.callbacks.records import client_data, service_fields
from engine.settings import Settings
from tests.callbacks.conftest import ADMIN, BASE, CLIENT, create, events, record, wait_state, write_config
from tests.conftest import REPO
from tests.support.engine_process import free_port
from tests.support.eventually import eventually

ECHO_FLOW = """<?xml version="1.0" encoding="UTF-8"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" xmlns:cb="urn:callback-engine:callback"
       version="1.0" datamodel="python" name="echo" initial="waiting">
  <datamodel>
    <data id="_data" expr="{}"/>
  </datamodel>
  <state id="waiting">
    <onentry>
      <cb:update>
        <param name="seen" expr="'|'.join(str(_data[k]) for k in ('str', 'len', 'In', '_event'))"/>
        <param name="builtins_intact" expr="str(len('abc')) + str(In('waiting'))"/>
      </cb:update>
    </onentry>
    <transition event="cb.updated" target="done">
      <assign location="_data" expr="_event.data['_data']"/>
      <cb:update>
        <param name="seen_after" expr="str(_data.get('order')) + '|' + str(_data.get('str', 'gone'))"/>
      </cb:update>
    </transition>
  </state>
  <final id="done">
    <onentry>
      <cb:complete reason="AGENT_CONNECTED"/>
    </onentry>
  </final>
</scxml>
"""

EXTRA_SERVICES = {
    "choosy": {"_service": "callback", "_allowed_virtual_queues": "Empty_VQ"},
    "echo": {"_service": "echo"},
    "stuck": {"_service": "callback", "_urs_virtual_queue": "Empty_VQ"},  # no agents: the flow waits
}
HOSTILE_KEYS = {"str": "x", "len": "y", "In": "z", "_event": "w", "order": "A-17"}


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    config = write_config(tmp_path)
    for name, options in EXTRA_SERVICES.items():
        (config / "services" / f"{name}.json").write_text(json.dumps(options))
    flows = tmp_path / "flows"
    flows.mkdir()
    for path in (REPO / "scxml").glob("*.scxml"):
        shutil.copy(path, flows)
    (flows / "echo.scxml").write_text(ECHO_FLOW)
    port = free_port()
    settings = Settings.load(
        config_dir=config, env={}, data_dir=tmp_path / "data", flows_dir=flows,
        admin_key="admin-key", client_key="client-key", flow_watch_interval=0, port=port)
    return await aiohttp_client(create_app(settings), server_kwargs={"port": port})


async def post(client, service: str, **params):
    r = await client.post(f"{BASE}/{service}", json=params, headers=CLIENT)
    return r.status, await r.json()


async def count(client, number: str) -> int:
    r = await client.get(BASE, params={"_customer_number": number}, headers=CLIENT)
    assert r.status == 200
    return len(await r.json())


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- dialling, capacity, TTL: the service's alone ---------------------------------------------------
async def test_forty_back_to_back_dials_are_refused_and_the_service_value_is_used(client) -> None:
    status, body = await post(client, "callback", _customer_number="+15550020001",
                              _max_dial_attempts=40, _dial_retry_timeout=0)
    assert status == 400 and "_max_dial_attempts" in body["message"], body
    assert await count(client, "+15550020001") == 0  # nothing created, nothing dialled
    # the same number without the overrides: the service's 3 attempts, _dial_retry_timeout apart
    cid = await create(client, "callback", _customer_number="+15550020001")
    done = await wait_state(client, cid, "COMPLETED", timeout=30)
    assert done["_callback_reason"] == "FAIL_CALL_TO_CUSTOMER"
    dials = [e for e in await events(client, "callback", cid) if e["event_id"] == "_cbe_on_dial_init"]
    assert len(dials) == 3
    # an update cannot slip one in either
    other = await create(client, "callback", _customer_number="+15550900001",
                         _desired_time=iso(timedelta(hours=3)))
    r = await client.put(f"{BASE}/callback/{other}", json={"_dial_retry_timeout": 0}, headers=CLIENT)
    assert r.status == 400 and "_dial_retry_timeout" in (await r.json())["message"]
    assert "_dial_retry_timeout" not in await record(client, other)


async def test_every_service_only_option_is_refused_by_name(client) -> None:
    assert {"_max_dial_attempts", "_dial_retry_timeout", "_wait_for_agent", "_ttl", "_max_request_by_time_bucket",
            "_request_time_bucket", "_max_queued_callbacks_per_service", "_service"} <= SERVICE_ONLY
    for i, name in enumerate(sorted(SERVICE_ONLY)):
        value = OPTIONS[name].default  # even the default value: refused for its name, not its value
        number = f"+155509100{i:02d}"
        status, body = await post(client, "callback", _customer_number=number, **{name: value if value != "" else "x"})
        assert status == 400, (name, body)
        assert body["message"].startswith(f"{name} is a service option"), (name, body)
        assert await count(client, number) == 0


def test_an_older_record_with_a_service_only_option_does_not_reach_the_flow() -> None:
    stored = {"_id": "c1", "_customer_number": "+15550000000", "_max_dial_attempts": 40, "_ttl": 1,
              "_urs_virtual_queue": "Callback_VQ", "order": "A-17", "str": "x"}
    assert service_fields(stored) == {"_id": "c1", "_customer_number": "+15550000000",
                                      "_urs_virtual_queue": "Callback_VQ"}
    assert client_data(stored) == {"order": "A-17", "str": "x"}


# -- what a request may set: accepted when valid, refused (naming it) when not -----------------------
GOOD_AND_BAD = {
    "_call_direction": ("USERORIGINATED", "SIDEWAYS"),
    "_urs_virtual_queue": ("Callback_VQ", "Empty_VQ"),  # Empty_VQ is not offered by service "callback"
    "_enable_status_notification": ("notify", "always"),
    "_status_notification_type": ("orscb", "smtp"),
    "_status_notification_target": ("https://example.com/callbacks", "https://example.com/\nINFO forged"),
    "_status_notification_provider": ("fcm-prod", "a b"),
    "_status_notification_language": ("fr", "<script>"),
    "_status_notification_debug": (True, "maybe"),
}


async def test_each_request_option_is_accepted_or_refused(client) -> None:
    assert set(GOOD_AND_BAD) == set(REQUEST_OPTIONS)
    for i, (name, (good, bad)) in enumerate(GOOD_AND_BAD.items()):
        status, body = await post(client, "callback", _customer_number=f"+155509200{i:02d}", **{name: bad})
        assert status == 400 and name in body["message"], (name, body)
        desired = iso(timedelta(hours=4))  # scheduled, so the flow does not run meanwhile
        cid = await create(client, "callback", _customer_number=f"+155509300{i:02d}", _desired_time=desired,
                           **{name: good})
        assert (await record(client, cid))[name] == good
    # a queue the service offers besides its own
    cid = await create(client, "choosy", _customer_number="+15550940000", _urs_virtual_queue="Empty_VQ",
                       _desired_time=iso(timedelta(hours=4)))
    assert (await record(client, cid))["_urs_virtual_queue"] == "Empty_VQ"
    status, body = await post(client, "choosy", _customer_number="+15550940001", _urs_virtual_queue="Other_VQ")
    assert status == 400 and "Other_VQ" in body["message"] and "Empty_VQ" in body["message"]
    # updates: checked the same way; a kept option cannot be removed
    r = await client.put(f"{BASE}/choosy/{cid}", json={"_call_direction": "BACKWARDS"}, headers=CLIENT)
    assert r.status == 400 and "_call_direction" in (await r.json())["message"]
    r = await client.put(f"{BASE}/choosy/{cid}", json={"_urs_virtual_queue": ""}, headers=CLIENT)
    assert r.status == 400 and "_urs_virtual_queue" in (await r.json())["message"]
    r = await client.put(f"{BASE}/choosy/{cid}", json={"_urs_virtual_queue": "Callback_VQ"}, headers=CLIENT)
    assert r.status == 200 and (await record(client, cid))["_urs_virtual_queue"] == "Callback_VQ"
    # push fields are checked too
    status, body = await post(client, "callback", _customer_number="+15550940002", _device_os="apns",
                              _device_notification_id="x" * 40)
    assert status == 400 and "_device_os" in body["message"]


async def test_bad_key_names_are_refused(client) -> None:
    for key in ("_", "_a b", "_x\ny", "1abc", "_" + "a" * 120):
        status, body = await post(client, "callback", _customer_number="+15550950000", **{key: "v"})
        assert status == 400 and "key" in body["message"], (key, body)


# -- user keys are data -----------------------------------------------------------------------------
async def test_user_keys_cannot_shadow_anything_in_the_default_flow(client) -> None:
    cid = await create(client, "callback", _customer_number="+15550960000", **HOSTILE_KEYS)
    done = await wait_state(client, cid, "COMPLETED", timeout=30)
    assert done["_callback_reason"] == "AGENT_CONNECTED", done
    assert {k: done[k] for k in HOSTILE_KEYS} == HOSTILE_KEYS  # the record keeps them as given


async def test_the_default_flow_keeps_data_in_step_with_updates(client) -> None:
    cid = await create(client, "stuck", _customer_number="+15550960001", **HOSTILE_KEYS)
    sid = (await wait_state(client, cid, "QUEUED"))["_ors_session_id"]

    async def datamodel() -> dict:
        r = await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)
        assert r.status == 200
        return (await r.json())["datamodel"]

    before = await datamodel()
    assert before["_data"] == HOSTILE_KEYS and not {"str", "len", "order"} & set(before)
    r = await client.put(f"{BASE}/stuck/{cid}", json={"order": "B-2", "str": ""}, headers=CLIENT)
    assert r.status == 200
    want = {"len": "y", "In": "z", "_event": "w", "order": "B-2"}
    await eventually(datamodel, lambda dm: dm["_data"] == want, timeout=10, expected=f"_data == {want}",
                     seen=lambda dm: dm["_data"])
    r = await client.delete(f"{BASE}/stuck/{cid}", headers=CLIENT)
    assert r.status == 200


async def test_the_flow_reads_user_keys_under_data(client) -> None:
    cid = await create(client, "echo", _customer_number="+15550970000", **HOSTILE_KEYS)

    async def still_running_or_seen() -> dict:
        rec = await record(client, cid)
        assert "seen" in rec or rec["_callback_state"] != "COMPLETED", rec
        return rec

    rec = await eventually(still_running_or_seen, lambda rec: "seen" in rec, timeout=15,
                           expected="'seen' on the record")
    assert rec["seen"] == "x|y|z|w" and rec["builtins_intact"] == "3True"
    r = await client.put(f"{BASE}/echo/{cid}", json={"order": "B-2", "str": ""}, headers=CLIENT)
    assert r.status == 200, await r.text()
    done = await wait_state(client, cid, "COMPLETED")
    assert done["_callback_reason"] == "AGENT_CONNECTED" and done["seen_after"] == "B-2|gone"


async def test_ors_start_parameters_cannot_shadow_builtins(client) -> None:
    r = await client.post("/scxml/session/start", json={"src": "hello", "str": "x", "len": 1}, headers=CLIENT)
    body = await r.json()
    assert r.status == 400 and "len, str" in body["message"] and "builtins" in body["message"], body
    # declared ids and other names keep the ORS semantics
    r = await client.post("/scxml/session/start", json={"src": "hello", "greeting": "hi", "who": "ann"},
                          headers=CLIENT)
    assert r.status == 200, await r.text()


async def test_a_service_option_named_like_a_builtin_is_refused(client) -> None:
    r = await client.put("/admin/services/shadowy", json={"_service": "callback", "len": 3}, headers=ADMIN)
    assert r.status == 400 and "'len'" in (await r.json())["message"]
    r = await client.put("/admin/services/huge", json={"_service": "callback", "_ttl": 10**12}, headers=ADMIN)
    assert r.status == 400 and "_ttl must be at most" in (await r.json())["message"]


# -- times far ahead: 400 with the reason, never 500 ----------------------------------------------
async def test_far_future_times_answer_400(client) -> None:
    for desired, why in (("9999-12-31T23:59:59Z", "out of range"), (iso(timedelta(days=400)), "365 days ahead"),
                         ("0001-01-01T00:00:00+01:00", "out of range")):
        status, body = await post(client, "callback", _customer_number="+15550980000", _desired_time=desired)
        assert status == 400 and "_desired_time" in body["message"] and why in body["message"], (desired, body)
    assert await count(client, "+15550980000") == 0
    cid = await create(client, "callback", _customer_number="+15550980001", _desired_time=iso(timedelta(days=2)))
    before = await record(client, cid)
    for desired in ("9999-12-31T23:59:59Z", iso(timedelta(days=400))):
        r = await client.put(f"{BASE}/callback/{cid}", json={"_new_desired_time": desired}, headers=CLIENT)
        assert r.status == 400 and "_new_desired_time" in (await r.json())["message"]
    after = await record(client, cid)
    assert (after["_desired_time"], after["_expiration_time"]) == (before["_desired_time"], before["_expiration_time"])
    status, _ = await post(client, "callback", _customer_number="+15550980002", _desired_time=iso(timedelta(days=300)))
    assert status == 200  # within the horizon


async def test_availability_extremes_answer_400(client) -> None:
    url = f"{BASE}/callback/availability"
    cases = {
        "start=9999-12-31T23:59:00Z": "start",
        f"start={iso(timedelta(days=400))}": "365 days ahead",
        "start=0001-01-01T00:00:00%2B01:00": "out of range",
        "end=9999-12-31T23:59:00Z": "end",
        "number-of-days=99999999999999999999999": "number-of-days",
        "number-of-days=-1": "number-of-days",
        "max-time-slots=0": "max-time-slots",
        "max-time-slots=1e9": "max-time-slots",
    }
    for query, why in cases.items():
        r = await client.get(f"{url}?{query}", headers=CLIENT)
        assert r.status == 400 and why in (await r.json())["message"], (query, await r.text())
    r = await client.get(f"{url}?start={iso(timedelta(days=300))}&number-of-days=2&max-time-slots=5", headers=CLIENT)
    assert r.status == 200 and len(await r.json()) == 5
