"""Issue 9: what a review attacking the hardened engine still found, each fixed and kept here.

* a session started through the session API could write any callback's record by naming its
  ``_id``, and could run the callback flow itself (dialling numbers of the client's choice);
* a callback flow's own timers (``retry``...) could be raised from outside: they are ``cb.*`` now;
* orscb notifications could be aimed into another callback's session;
* python flows could reach the engine as a developer's upload without a namespace or as CDATA
  content, and a sandboxed flow could build one at run time;
* a transaction list that is not UTF-8 answered 500.
"""

from __future__ import annotations

import shutil

import pytest

from engine.app import create_app
from engine.scxml import load_document
from engine.scxml.runner import run_to_completion
from engine.settings import Settings
from tests.callbacks.conftest import ADMIN, CLIENT, create, record, write_config
from tests.conftest import REPO
from tests.support.engine_process import free_port

ROGUE = """<scxml xmlns="http://www.w3.org/2005/07/scxml" xmlns:cb="urn:callback-engine:callback"
       version="1.0" datamodel="python" name="rogue" initial="s">
  <state id="s">
    <onentry><cb:complete reason="AGENT_CONNECTED"/></onentry>
    <transition event="error.execution" target="refused"/>
  </state>
  <final id="refused"/>
</scxml>
"""


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    flows = tmp_path / "flows"
    shutil.copytree(REPO / "scxml", flows)
    (flows / "rogue.scxml").write_text(ROGUE)
    port = free_port()
    settings = Settings.load(config_dir=write_config(tmp_path), env={}, data_dir=tmp_path / "data",
                             flows_dir=flows, admin_key="admin-key", client_key="client-key",
                             developer_key="dev-key", flow_watch_interval=0, port=port)
    return await aiohttp_client(create_app(settings), server_kwargs={"port": port})


async def test_the_session_api_cannot_run_callback_flows_or_touch_records(client):
    victim = await create(client, "tiny", _customer_number="+15551231000")
    before = await record(client, victim)
    r = await client.post("/scxml/session/start", headers=CLIENT, json={
        "src": "callback", "_id": victim, "_customer_number": "+15550020000", "_max_dial_attempts": 40})
    body = await r.json()
    assert r.status == 403 and "create a callback instead" in body["message"], body
    # a flow that is not a callback flow may name a callback: it still owns none
    r = await client.post("/scxml/session/start", headers=CLIENT, json={"src": "rogue", "_id": victim})
    assert r.status == 200, await r.text()
    r = await client.get(f"/scxml/session/{(await r.json())['sessionid']}/query", headers=CLIENT)
    assert (await r.json())["final_state"] == "refused"
    after = await record(client, victim)
    assert after["_callback_state"] == before["_callback_state"] != "COMPLETED"


async def test_a_callback_flows_own_timers_cannot_be_raised_from_outside(client):
    cid = await create(client, "tiny", _customer_number="+15551231001")
    sid = (await record(client, cid))["_ors_session_id"]
    for name in ("cb.retry", "cb.confirm.timeout", "cb.callin.timeout"):
        r = await client.post(f"/scxml/session/{sid}/event/{name}", headers=CLIENT)
        assert r.status == 403, name
    text = (REPO / "scxml" / "callback.scxml").read_text()
    for bare in ('event="retry"', 'event="confirm.timeout"', 'event="callin.timeout"'):
        assert bare not in text


async def test_orscb_cannot_aim_into_another_callbacks_session(client):
    victim = await create(client, "tiny", _customer_number="+15551231002")
    sid = (await record(client, victim))["_ors_session_id"]
    r = await client.post("/genesys/1/notification/subscription", headers=CLIENT, json={
        "subscriberId": "x", "providerName": "x", "expire": 600, "filter": "apps/*",
        "notificationDetails": {"deviceId": sid, "type": "orscb", "properties": {}}})
    assert r.status == 403, await r.text()
    r = await client.post("/genesys/1/service/callback/callback", headers=CLIENT, json={
        "_customer_number": "+15551231003", "_enable_status_notification": "notify",
        "_status_notification_type": "orscb", "_status_notification_target": sid})
    body = await r.json()
    assert r.status == 400 and "another callback" in body["message"], body


NO_NAMESPACE = b"""<scxml version="1.0" initial="s"><state id="s"><onentry>
  <script>open('/tmp/never-written', 'w')</script></onentry></state></scxml>"""
CDATA_CHILD = b"""<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="null" initial="s">
  <state id="s"><invoke type="scxml"><content><![CDATA[
    <scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="c">
      <state id="c"><onentry><script>import os</script></onentry></state></scxml>]]></content></invoke>
  </state></scxml>"""


@pytest.mark.parametrize("text", [NO_NAMESPACE, CDATA_CHILD], ids=["no-namespace", "cdata-child"])
async def test_developers_cannot_smuggle_python_flows(client, text):
    r = await client.put("/admin/flows/smuggled", data=text, headers={"x-api-key": "dev-key"})
    body = await r.json()
    assert r.status == 403 and "python datamodel" in body["message"], body


async def test_a_sandboxed_flow_cannot_invoke_python_content(tmp_path):
    doc = tmp_path / "parent.scxml"
    doc.write_bytes(CDATA_CHILD.replace(b"<state id=\"s\">", b"<state id=\"s\"><transition event=\"error.*\" "
                                        b"target=\"refused\"/><transition event=\"done.invoke\" target=\"ran\"/>")
                    .replace(b"</state></scxml>", b"</state><final id=\"refused\"/><final id=\"ran\"/></scxml>"))
    outcome = await run_to_completion(load_document(str(doc)), timeout=5)
    assert outcome.final_state == "refused"


async def test_a_transaction_list_that_is_not_utf8_is_a_400(client):
    for body, ctype in ((b"\xff\xfe{", "text/plain"), ("[x]".encode("utf-16"), "text/plain; charset=utf-16")):
        r = await client.put("/admin/transaction-lists/bad", data=body, headers={**ADMIN, "Content-Type": ctype})
        answer = await r.json()
        assert r.status == 400 and "UTF-8" in answer["message"], answer
