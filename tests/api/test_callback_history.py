"""GET /admin/callbacks/{id}/history: what the console's detail page shows of one callback."""

from __future__ import annotations

import re

from engine.api.appkeys import RUNTIME
from engine.app import create_app
from engine.callbacks.records import format_time
from engine.roles import ADMINISTRATOR, DEVELOPER, MONITOR, SUPERVISOR, allowed
from engine.roles import CLIENT as CLIENT_ROLE
from engine.settings import Settings
from tests.callbacks.conftest import ADMIN, BASE, CLIENT, REPO, create, make_client, wait_state, write_config
from tests.support.engine_process import free_port
from tests.support.eventually import eventually

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


async def history(client, cid: str, headers: dict[str, str] = ADMIN) -> dict:
    r = await client.get(f"/admin/callbacks/{cid}/history", headers=headers)
    body = await r.json()
    assert r.status == 200, body
    return body


async def test_a_callback_through_the_simulator_has_its_whole_timeline(aiohttp_client, tmp_path) -> None:
    client = await make_client(aiohttp_client, tmp_path)
    cid = await create(client, "callback", _customer_number="+15550900001", order="A-17")
    await wait_state(client, cid, "COMPLETED")

    async def done() -> dict:
        return await history(client, cid)

    found = await eventually(done, lambda h: h["session"] is None or h["session"]["status"] != "running",
                             timeout=10, expected="the flow session over")
    timeline = found["timeline"]
    assert [(t["from"], t["state"]) for t in timeline] == [
        ("SCHEDULED", "QUEUED"), ("QUEUED", "ROUTING"), ("ROUTING", "PROCESSING"), ("PROCESSING", "COMPLETED")]
    assert [t["source"] for t in timeline] == ["api create", "flow", "flow", "flow"]
    assert [t["reason"] for t in timeline] == [None, None, None, "AGENT_CONNECTED"]
    assert all(ISO.match(t["at"]) for t in timeline)
    assert [t["at"] for t in timeline] == sorted(t["at"] for t in timeline)
    assert found["record"]["_id"] == cid and found["record"]["order"] == "A-17"
    assert found["record"]["_callback_state"] == "COMPLETED"
    names = [e["name"] for e in found["events"]]
    assert names[0] == "_cbe_on_callback_submitted" and "_cbe_on_service_exit" in names
    assert all(ISO.match(e["at"]) and e["data"]["_service_id"] == cid for e in found["events"])
    assert found["deliveries"] == [] and found["pushes"] == []  # the service notifies nobody
    session = found["session"]
    assert session["sessionid"] == found["record"]["_ors_session_id"] and session["flow"] == "callback"
    assert set(session) == {"sessionid", "flow", "version", "status", "active_states"}  # never its data


async def test_scheduled_rescheduled_and_cancelled_say_who_did_it(aiohttp_client, tmp_path) -> None:
    client = await make_client(aiohttp_client, tmp_path)
    now = client.app[RUNTIME].clock.now()
    cid = await create(client, "callback", _customer_number="+15550900002", _desired_time=format_time(now + 7200))
    r = await client.put(f"{BASE}/callback/{cid}", json={"_new_desired_time": format_time(now + 9000)},
                         headers=CLIENT)
    assert r.status == 200, await r.text()
    r = await client.delete(f"{BASE}/callback/{cid}", headers=CLIENT)
    assert r.status == 200, await r.text()
    timeline = (await history(client, cid))["timeline"]
    assert [(t["from"], t["state"], t["source"]) for t in timeline] == [
        (None, "SCHEDULED", "api create"), ("SCHEDULED", "SCHEDULED", "api reschedule"),
        ("SCHEDULED", "COMPLETED", "api cancel")]
    assert timeline[1]["detail"] == f"desired time {format_time(now + 9000)}"
    assert timeline[2]["reason"] == "CANCELLED"


async def test_the_timeline_survives_a_restart(aiohttp_client, tmp_path) -> None:
    """The rows are in the store (written with the record), not only in memory."""
    client = await make_client(aiohttp_client, tmp_path)
    later = format_time(client.app[RUNTIME].clock.now() + 7200)
    cid = await create(client, "callback", _customer_number="+15550900003", _desired_time=later)
    await client.app[RUNTIME].manager.commit()
    await client.close()
    client = await make_client(aiohttp_client, tmp_path)
    found = await history(client, cid)
    assert [(t["from"], t["state"], t["source"]) for t in found["timeline"]] == [(None, "SCHEDULED", "api create")]


async def test_unknown_callback_is_404_and_the_roles_apply(aiohttp_client, tmp_path) -> None:
    client = await make_client(aiohttp_client, tmp_path)
    r = await client.get("/admin/callbacks/nope/history", headers=ADMIN)
    assert r.status == 404 and "nope" in (await r.json())["message"]
    cid = await create(client, "callback", _customer_number="+15550900004")
    r = await client.get(f"/admin/callbacks/{cid}/history", headers=CLIENT)
    assert r.status == 403  # a client key never reads the admin area
    r = await client.get(f"/admin/callbacks/{cid}/history")
    assert r.status == 401


async def test_no_device_token_or_url_secret_in_the_answer(aiohttp_client, tmp_path) -> None:
    client = await make_client(aiohttp_client, tmp_path)
    token = "fcm-device-token-" + "z" * 40 + "WXYZ"
    cid = await create(client, "expiring", _customer_number="+15550900005", _device_os="fcm",
                       _device_notification_id=token)
    r = await client.get(f"/admin/callbacks/{cid}/history", headers=ADMIN)
    text = await r.text()
    assert r.status == 200 and token not in text
    assert (await r.json())["record"]["_device_notification_id"] == "…WXYZ"


async def test_without_storage_the_history_is_kept_in_memory(aiohttp_client, tmp_path) -> None:
    port = free_port()
    settings = Settings.load(
        config_dir=write_config(tmp_path), env={}, data_dir=tmp_path / "data", flows_dir=REPO / "scxml",
        admin_key="admin-key", client_key="client-key", flow_watch_interval=0, port=port, persistence=False)
    client = await aiohttp_client(create_app(settings), server_kwargs={"port": port})
    cid = await create(client, "callback", _customer_number="+15550900006")
    await wait_state(client, cid, "COMPLETED")
    found = await eventually(lambda: history(client, cid), lambda h: h["timeline"][-1]["state"] == "COMPLETED",
                             timeout=10, expected="the COMPLETED change in the timeline")
    assert [t["state"] for t in found["timeline"]] == ["QUEUED", "ROUTING", "PROCESSING", "COMPLETED"]
    assert found["events"]


def test_every_role_that_reads_callbacks_reads_their_history() -> None:
    path = "/admin/callbacks/abc/history"
    assert [r for r in (ADMINISTRATOR, SUPERVISOR, MONITOR, DEVELOPER, CLIENT_ROLE) if allowed(r, "GET", path)] == [
        ADMINISTRATOR, SUPERVISOR, MONITOR, DEVELOPER]


async def test_the_record_shown_is_the_one_read_before_its_timeline(aiohttp_client, tmp_path, monkeypatch) -> None:
    """A change made while the stored history is being read (a cancel, the flow moving on) must
    not show in the record without its row in the timeline: the record is taken as it was when
    the history began to be gathered, never read live when the answer is built."""
    from engine.callbacks import history as history_module

    client = await make_client(aiohttp_client, tmp_path)
    runtime = client.app[RUNTIME]
    later = format_time(runtime.clock.now() + 7200)
    cid = await create(client, "callback", _customer_number="+15550900009", _desired_time=later)
    await runtime.manager.commit()
    read_stored = history_module.stored

    async def stored_while_cancelled(store, callback_id):
        rows = await read_stored(store, callback_id)
        if callback_id == cid and not cancelled:
            cancelled.append(await runtime.callbacks.cancel("callback", cid))  # lands during the read
        return rows

    cancelled: list = []
    monkeypatch.setattr(history_module, "stored", stored_while_cancelled)
    found = await history(client, cid)
    assert cancelled, "the cancel did not happen during the read"
    assert found["timeline"][-1]["state"] == found["record"]["_callback_state"] == "SCHEDULED", found
    later_look = await history(client, cid)  # and the next answer has both
    assert later_look["timeline"][-1]["state"] == later_look["record"]["_callback_state"] == "COMPLETED"
