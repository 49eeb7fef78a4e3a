"""Issue 9 item 3: a client cannot forge a callback's outcome. Events that steer a callback
(``cb.*`` from the callback service, ``dial.result`` and the rest of the platform's vocabulary,
``error.*``/``done.*`` from the interpreter) are refused from the client event API and from
published notifications, and the ``callback/`` tag space is the engine's."""

from __future__ import annotations

import pytest

from tests.callbacks.conftest import BASE, CLIENT, cb_client, create, record  # noqa: F401 - fixture

FORGED = [
    ("cb.cancel", {"reason": "AGENT_CONNECTED"}),
    ("cb.updated", {"keys": "{}"}),
    ("dial.result", {"code": "0", "result": "answer"}),
    ("target.found", {"agent_id": "x"}),
    ("platform.error", {}),
    ("error.execution", {}),
    ("done.invoke.x", {}),
]


@pytest.mark.parametrize(("name", "data"), FORGED)
async def test_client_event_api_refuses_engine_events(cb_client, name, data):  # noqa: F811
    cid = await create(cb_client, "tiny", _customer_number="+15551230000")  # waits: no agents on Empty_VQ
    before = await record(cb_client, cid)
    sid = before["_ors_session_id"]
    r = await cb_client.post(f"/scxml/session/{sid}/event/{name}", data=data, headers=CLIENT)
    body = await r.json()
    assert r.status == 403, body
    assert "reserved" in body["message"]
    after = await record(cb_client, cid)
    assert after["_callback_state"] == before["_callback_state"] != "COMPLETED"
    assert "_callback_reason" not in after
    # an event of the client's own is still delivered
    r = await cb_client.post(f"/scxml/session/{sid}/event/customer.note", data={"x": "1"}, headers=CLIENT)
    assert r.status == 200, await r.text()


async def test_publish_cannot_use_the_callback_tag_space(cb_client):  # noqa: F811
    cid = await create(cb_client, "tiny", _customer_number="+15551230001")
    for tag in (f"callback/tiny/{cid}", "callback/tiny", "callback"):
        r = await cb_client.post("/genesys/1/notification/publish", headers=CLIENT,
                                 json={"tag": tag, "message": {"event_id": "_cbe_on_callback_completed",
                                                               "_callback_state": "COMPLETED"}})
        body = await r.json()
        assert r.status == 403, (tag, body)
        assert "callback/ tag space" in body["message"]
    r = await cb_client.post("/genesys/1/notification/publish", headers=CLIENT,
                             json={"tag": "apps/mine", "message": {"event_id": "hello"}})
    assert r.status == 200, await r.text()


async def test_orscb_publish_cannot_raise_engine_events_in_a_callback_session(cb_client):  # noqa: F811
    cid = await create(cb_client, "tiny", _customer_number="+15551230002")
    sid = (await record(cb_client, cid))["_ors_session_id"]
    r = await cb_client.post("/genesys/1/notification/subscription", headers=CLIENT, json={
        "subscriberId": "attacker", "providerName": "x", "expire": 600, "filter": "apps/*",
        "notificationDetails": {"deviceId": sid, "type": "orscb", "properties": {}}})
    assert r.status == 403, await r.text()  # no orscb into a callback's session at all
    # and whatever the subscriptions, a published message may not carry an engine event
    r = await cb_client.post("/genesys/1/notification/publish", headers=CLIENT, json={
        "tag": "apps/x", "message": {"event_id": "cb.cancel", "reason": "AGENT_CONNECTED"}})
    body = await r.json()
    assert r.status == 403, body
    assert "reserved" in body["message"]
    after = await record(cb_client, cid)
    assert after["_callback_state"] != "COMPLETED"


async def test_basic_http_cannot_raise_engine_events_even_with_the_capability(cb_client):  # noqa: F811
    from engine.api.appkeys import RUNTIME

    cid = await create(cb_client, "tiny", _customer_number="+15551230003")
    sid = (await record(cb_client, cid))["_ors_session_id"]
    manager = cb_client.app[RUNTIME].manager
    location = manager.processor_for("basichttp").location(manager.sessions[sid])
    path = location.split("://", 1)[1].split("/", 1)[1]
    # the bare session id, as the finding used it, grants nothing
    r = await cb_client.post(f"/basichttp/{sid}", data={"_scxmleventname": "cb.cancel", "reason": "AGENT_CONNECTED"})
    assert r.status == 404
    for name in ("cb.cancel", "dial.result", "error.execution"):
        r = await cb_client.post("/" + path, data={"_scxmleventname": name, "reason": "AGENT_CONNECTED"})
        body = await r.json()
        assert r.status == 403 and "reserved" in body["message"], body
    r = await cb_client.post("/" + path, data={"_scxmleventname": "customer.note"})
    assert r.status == 200
    after = await record(cb_client, cid)
    assert after["_callback_state"] != "COMPLETED" and "_callback_reason" not in after


FORGING_FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript"
       initial="s">
  <datamodel><data id="target" expr="''"/><data id="name" expr="''"/><data id="outcome" expr="''"/></datamodel>
  <state id="s">
    <onentry>
      <send eventexpr="name" targetexpr="'#_scxml_' + target">
        <param name="reason" expr="'AGENT_CONNECTED'"/><param name="code" expr="'0'"/>
        <param name="result" expr="'answer'"/>
      </send>
      <send event="customer.note" targetexpr="'#_scxml_' + target"/>
      <send event="sent"/>
    </onentry>
    <transition event="error.*" target="refused">
      <assign location="outcome" expr="_event.name + ': ' + _event.data.message"/>
    </transition>
    <transition event="sent" target="refused"><assign location="outcome" expr="'sent'"/></transition>
  </state>
  <state id="refused"/>
</scxml>
"""


@pytest.mark.parametrize(("name", "data"), FORGED)
async def test_a_flow_cannot_send_engine_events_to_another_session(aiohttp_client, tmp_path, name, data):
    """A developer's sandboxed flow (any session a client starts) sending ``cb.cancel``,
    ``dial.result``... to a callback's session over the SCXML processor (``#_scxml_<id>``, the id
    every reader of the record sees): refused with error.communication, the callback unchanged."""
    import shutil

    from engine.app import create_app
    from engine.settings import Settings
    from tests.callbacks.conftest import REPO, write_config
    from tests.support.engine_process import free_port
    from tests.support.eventually import eventually

    flows = tmp_path / "flows"
    shutil.copytree(REPO / "scxml", flows)
    port = free_port()
    settings = Settings.load(config_dir=write_config(tmp_path), env={}, data_dir=tmp_path / "data", flows_dir=flows,
                             admin_key="admin-key", client_key="client-key", developer_key="developer-key",
                             flow_watch_interval=0, port=port)
    client = await aiohttp_client(create_app(settings), server_kwargs={"port": port})
    r = await client.put("/admin/flows/forger", data=FORGING_FLOW, headers={"x-api-key": "developer-key"})
    assert r.status == 200, await r.text()
    cid = await create(client, "tiny", _customer_number="+15551230004")  # waits: no agents on Empty_VQ
    before = await record(client, cid)
    sid = before["_ors_session_id"]
    r = await client.post("/scxml/session/start", data={"src": "forger", "target": sid, "name": name}, headers=CLIENT)
    started = await r.json()
    assert r.status == 200, started

    async def query() -> dict:
        r = await client.get(f"/scxml/session/{started['sessionid']}/query", headers=CLIENT)
        return await r.json()

    found = await eventually(query, lambda found: found["datamodel"]["outcome"], expected="the sends made")
    outcome = found["datamodel"]["outcome"]
    assert outcome.startswith("error.communication") and "reserved" in outcome, found
    after = await record(client, cid)
    assert after["_callback_state"] == before["_callback_state"] != "COMPLETED", after
    assert "_callback_reason" not in after


WILDCARD_FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript" initial="s">
  <datamodel><data id="caught" expr="''"/></datamodel>
  <state id="s">
    <transition event="error.* done.* cb.* dial.* platform.*" target="caught">
      <assign location="caught" expr="_event.name"/>
    </transition>
  </state>
  <final id="caught"/>
</scxml>
"""


@pytest.mark.parametrize("name", ["error", "done", "cb", "dial", "platform"])
async def test_a_bare_reserved_name_is_refused_too(aiohttp_client, tmp_path, name):
    """A descriptor 'error.*' matches the event 'error' itself (W3C 3.12.1): the bare name of a
    reserved namespace reached a flow's error handler from the client event API."""
    import shutil

    from engine.app import create_app
    from engine.settings import Settings
    from tests.callbacks.conftest import REPO, write_config
    from tests.support.engine_process import free_port

    flows = tmp_path / "flows"
    shutil.copytree(REPO / "scxml", flows)
    (flows / "wild.scxml").write_text(WILDCARD_FLOW)
    port = free_port()
    settings = Settings.load(config_dir=write_config(tmp_path), env={}, data_dir=tmp_path / "data", flows_dir=flows,
                             admin_key="admin-key", client_key="client-key", flow_watch_interval=0, port=port)
    client = await aiohttp_client(create_app(settings), server_kwargs={"port": port})
    r = await client.post("/scxml/session/start", data={"src": "wild"}, headers=CLIENT)
    sid = (await r.json())["sessionid"]
    r = await client.post(f"/scxml/session/{sid}/event/{name}", headers=CLIENT)
    body = await r.json()
    assert r.status == 403 and "reserved" in body["message"], body
    found = await (await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)).json()
    assert found["status"] == "running" and found["datamodel"]["caught"] == "", found
    r = await client.post(f"/scxml/session/{sid}/event/errors", headers=CLIENT)  # a name of its own
    assert r.status == 200, await r.text()
