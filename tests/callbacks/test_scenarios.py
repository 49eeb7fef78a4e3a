"""Every scenario of the default flow, end to end through the REST API against the simulator;
each runs against the default (ECMAScript) flow and its python twin, scxml/callback-python.scxml."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.api.appkeys import RUNTIME
from engine.callbacks.event_catalog import FLOW_EVENTS
from tests.callbacks.conftest import ADMIN, BASE, CLIENT, create, events, make_client, record, wait_state
from tests.support.eventually import eventually


@pytest.fixture(params=["callback", "callback-python"])
async def cb_client(request, aiohttp_client, tmp_path):
    """The services of this module run ``request.param``: every scenario, on both flows."""
    return await make_client(aiohttp_client, tmp_path, request.param)


def names(evts: list[dict]) -> list[str]:
    return [e["event_id"] for e in evts]


def flow_events(evts: list[dict]) -> list[str]:
    return [n for n in names(evts) if n in FLOW_EVENTS]


async def test_answered_on_the_first_try(cb_client) -> None:
    cid = await create(cb_client, "callback", _customer_number="+15550900001", order="A-17")
    done = await wait_state(cb_client, cid, "COMPLETED")
    assert done["_callback_reason"] == "AGENT_CONNECTED"
    assert done["order"] == "A-17" and done["_ors_session_id"]
    evts = await events(cb_client, "callback", cid)
    assert flow_events(evts) == [
        "_cbe_on_service_create", "_cbe_on_virtual_ixn_create", "_cbe_on_target_found",
        "_cbe_on_dial_init", "_cbe_on_dial_done", "_cbe_on_connect_treatment_start",
        "_cbe_on_customer_queued", "_cbe_on_route_to_agent", "_cbe_on_service_exit",
    ]
    by_name = {e["event_id"]: e for e in evts}
    dial_done = by_name["_cbe_on_dial_done"]
    assert dial_done["c_call_result"] == 0 and dial_done["c_call_num_attempt"] == 1
    assert dial_done["c_dialed_number"] == "+15550900001"
    assert by_name["_cbe_on_service_exit"]["c_termination_type"] == "COMPLETED.AGENT_CONNECTED"
    assert by_name["_cbe_on_target_found"]["c_agent_id"].startswith("Callback_VQ")
    for e in evts:  # the seed's message format
        assert e["_service_id"] == cid and e["_service_name"] == "callback"
        assert e["timestamp"].isdigit() and "_callback_state" in e
    service_events = [n for n in names(evts) if n.startswith("_cbe_on_callback_")]
    assert service_events[:3] == ["_cbe_on_callback_submitted", "_cbe_on_callback_status_updated",
                                  "_cbe_on_callback_queued"]
    # the record went QUEUED -> ROUTING -> PROCESSING -> COMPLETED, one status update each
    states = [e["_callback_state"] for e in evts if e["event_id"] == "_cbe_on_callback_status_updated"]
    assert states == ["QUEUED", "ROUTING", "PROCESSING", "COMPLETED"]


async def test_busy_then_answered(cb_client) -> None:
    cid = await create(cb_client, "callback", _customer_number="+15550010000")
    done = await wait_state(cb_client, cid, "COMPLETED")
    assert done["_callback_reason"] == "AGENT_CONNECTED"
    dials = [e for e in await events(cb_client, "callback", cid) if e["event_id"] == "_cbe_on_dial_done"]
    assert [(d["c_call_num_attempt"], d["c_call_result"]) for d in dials] == [(1, 1), (2, 0)]


async def test_all_attempts_fail(cb_client) -> None:
    cid = await create(cb_client, "callback", _customer_number="+15550020000")
    done = await wait_state(cb_client, cid, "COMPLETED")
    assert done["_callback_reason"] == "FAIL_CALL_TO_CUSTOMER"
    evts = await events(cb_client, "callback", cid)
    dials = [e for e in evts if e["event_id"] == "_cbe_on_dial_done"]
    assert [(d["c_call_num_attempt"], d["c_call_result"]) for d in dials] == [(1, 2), (2, 3), (3, 4)]
    assert names(evts).count("_cbe_on_service_exit") == 1
    assert [e["_callback_state"] for e in evts if e["event_id"] == "_cbe_on_callback_status_updated"] == \
        ["QUEUED", "COMPLETED"]
    exit_event = next(e for e in evts if e["event_id"] == "_cbe_on_service_exit")
    assert exit_event["c_termination_type"] == "ERROR.ERROR"
    # the reserved agent went back to the queue
    sim = await (await cb_client.get("/admin/simulator", headers=ADMIN)).json()
    assert all(not a.get("busy") for a in sim["state"]["queues"]["Callback_VQ"].get("agents", []))


async def test_agent_found_after_the_customer_answers(cb_client) -> None:
    cid = await create(cb_client, "nowait", _customer_number="+15550900002")
    done = await wait_state(cb_client, cid, "COMPLETED")
    assert done["_callback_reason"] == "AGENT_CONNECTED"
    order = flow_events(await events(cb_client, "nowait", cid))
    assert order.index("_cbe_on_dial_done") < order.index("_cbe_on_target_found")


async def test_cancel_while_queued(cb_client) -> None:
    cid = await create(cb_client, "expiring", _customer_number="+15550900003")  # no agents: stays queued
    await wait_state(cb_client, cid, "QUEUED")
    r = await cb_client.delete(f"{BASE}/expiring/{cid}", headers=CLIENT)
    assert r.status == 200 and (await r.json())["_callback_reason"] == "CANCELLED"
    rec = await record(cb_client, cid)
    assert rec["_callback_state"] == "COMPLETED" and rec["_callback_reason"] == "CANCELLED"
    evts = names(await eventually(lambda: events(cb_client, "expiring", cid),
                                  lambda got: "_cbe_on_service_exit" in names(got), timeout=10,
                                  expected="_cbe_on_service_exit among the events"))
    assert "_cbe_on_callback_cancelled" in evts and "_cbe_on_service_exit" in evts
    r = await cb_client.delete(f"{BASE}/expiring/{cid}", headers=CLIENT)
    assert r.status == 400 and "already COMPLETED" in (await r.json())["message"]


def clock_iso(client, seconds_ahead: float) -> str:
    """A time on the engine's clock, which runs 200x faster than the wall clock here."""
    now = client.app[RUNTIME].manager.clock.now()
    return datetime.fromtimestamp(now + seconds_ahead, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_scheduled_then_rescheduled_then_run(cb_client) -> None:
    later = clock_iso(cb_client, 3 * 3600)
    cid = await create(cb_client, "callback", _customer_number="+15550900004", _desired_time=later)
    rec = await record(cb_client, cid)
    assert rec["_callback_state"] == "SCHEDULED" and rec["_desired_time"] == later
    evts = names(await events(cb_client, "callback", cid))
    assert evts == ["_cbe_on_callback_scheduled"]
    # Only SCHEDULED callbacks move; user keys change along, an empty value removes one.
    sooner = clock_iso(cb_client, 8 * 60)
    r = await cb_client.put(f"{BASE}/callback/{cid}", json={"_new_desired_time": sooner, "lang": "fr"},
                            headers=CLIENT)
    assert r.status == 200, await r.json()
    rec = await r.json()
    assert rec["_callback_state"] == "SCHEDULED" and rec["lang"] == "fr" and rec["_desired_time"] == sooner
    r = await cb_client.put(f"{BASE}/callback/{cid}", json={"lang": ""}, headers=CLIENT)
    assert "lang" not in await r.json()
    assert "_cbe_on_callback_rescheduled" in names(await events(cb_client, "callback", cid))
    # Its session starts _request_execution_time_buffer (120 s) before the desired time.
    done = await wait_state(cb_client, cid, "COMPLETED", timeout=30)
    assert done["_callback_reason"] == "AGENT_CONNECTED" and done["_seen"][0] == "SCHEDULED"
    r = await cb_client.put(f"{BASE}/callback/{cid}", json={"_new_desired_time": clock_iso(cb_client, 600)},
                            headers=CLIENT)
    assert r.status == 400 and "COMPLETED" in (await r.json())["message"]


async def test_reschedule_only_while_scheduled(cb_client) -> None:
    # tiny's queue has no agent and its TTL is the default: the callback stays QUEUED. (It was
    # 'expiring', whose 60 s TTL is 0.3 s at the simulator's speed: on a busy machine the
    # callback had expired before the PUT, which then met the COMPLETED refusal instead.)
    cid = await create(cb_client, "tiny", _customer_number="+15550900009")
    r = await cb_client.put(f"{BASE}/tiny/{cid}", json={"_new_desired_time": clock_iso(cb_client, 3600)},
                            headers=CLIENT)
    body = await r.json()
    assert r.status == 400 and "only SCHEDULED callbacks can be rescheduled" in body["message"]
    await cb_client.delete(f"{BASE}/tiny/{cid}", headers=CLIENT)


async def test_ttl_expiry(cb_client) -> None:
    cid = await create(cb_client, "expiring", _customer_number="+15550900005")
    done = await wait_state(cb_client, cid, "COMPLETED")
    assert done["_callback_reason"] == "FAIL_TIMEOUT_TTL"
    evts = await eventually(lambda: events(cb_client, "expiring", cid),
                            lambda got: "_cbe_on_service_exit" in names(got), timeout=10,
                            expected="_cbe_on_service_exit among the events")
    exit_event = next(e for e in evts if e["event_id"] == "_cbe_on_service_exit")
    assert exit_event["c_termination_type"] == "COMPLETED.FAIL_TIMEOUT_TTL"


async def test_click_to_call_in(cb_client) -> None:
    cid = await create(cb_client, "callin", _customer_number="+15550900006")
    rec = await eventually(lambda: record(cb_client, cid), lambda rec: rec.get("_access_code"), timeout=8,
                           expected="an _access_code on the record")
    assert rec["_access_code"] and rec["_access_number"] and rec["_access_expires"]
    r = await cb_client.post("/admin/simulator/call-in", json={"number": "+15550900006", "access_code": "000000"},
                             headers=ADMIN)
    assert r.status == 404
    r = await cb_client.post("/admin/simulator/call-in",
                             json={"number": "+15550900006", "access_code": rec["_access_code"]}, headers=ADMIN)
    assert r.status == 200
    done = await wait_state(cb_client, cid, "COMPLETED")
    assert done["_callback_reason"] == "AGENT_CONNECTED"
    flow = flow_events(await events(cb_client, "callin", cid))
    assert "_cbe_on_dial_init" not in flow and flow[-2:] == ["_cbe_on_route_to_agent", "_cbe_on_service_exit"]


async def test_queue_position(cb_client) -> None:
    first = await create(cb_client, "expiring", _customer_number="+15550900007")
    second = await create(cb_client, "expiring", _customer_number="+15550900008")
    async def position() -> dict:
        r = await cb_client.get(f"/genesys/1/service/{second}/check-queue-position", headers=CLIENT)
        return await r.json()

    pos = await eventually(position, lambda pos: pos.get("_position", 0) == 2, timeout=15, expected="position 2")
    assert pos["_position"] == 2 and pos["_total_waiting"] >= 2
    assert pos["ewt"] == -1  # Empty_VQ has no agents: unknown
    r = await cb_client.get("/genesys/1/service/nope/check-queue-position", headers=CLIENT)
    assert r.status == 404
    for cid in (first, second):
        await cb_client.delete(f"{BASE}/expiring/{cid}", headers=CLIENT)


async def test_the_default_flow_is_ecmascript_and_its_twin_python(cb_client) -> None:
    flows = cb_client.app[RUNTIME].flows.current
    assert flows["callback"].doc.datamodel.name == "ecmascript"
    assert flows["callback-python"].doc.datamodel.name == "python"
