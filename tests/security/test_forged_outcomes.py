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
