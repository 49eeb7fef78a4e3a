"""The ORS session API: the happy path and every error answer."""

from __future__ import annotations

from engine.api.appkeys import RUNTIME
from engine.sessions import rows as session_rows
from tests.api.conftest import ADMIN, CLIENT
from tests.support.eventually import eventually

WAIT_FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="idle">
<datamodel><data id="count" expr="0"/><data id="last"/></datamodel>
<state id="idle"><transition event="bump"><assign location="count" expr="count + 1"/>
<assign location="last" expr="_event.data"/></transition>
<transition event="stop" target="end"/></state><final id="end"/></scxml>"""


async def put_flow(client, name: str, text: str) -> dict:
    r = await client.put(f"/admin/flows/{name}", data=text, headers=ADMIN)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_start_event_query_terminate(engine_client) -> None:
    client = await engine_client()
    await put_flow(client, "counter", WAIT_FLOW)
    r = await client.post("/scxml/session/start", json={"src": "counter", "count": 5, "who": "ann"}, headers=CLIENT)
    assert r.status == 200
    started = await r.json()
    sid = started["sessionid"]
    assert started["version"] == 1 and started["status"] == "running"
    r = await client.post(f"/scxml/session/{sid}/event/bump", data={"k": "v"}, headers=CLIENT)
    assert r.status == 200 and (await r.json())["active_states"] == ["idle"]
    r = await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)
    q = await r.json()
    assert q["flow"] == "counter" and q["version"] == 1 and q["status"] == "running"
    # start parameters: a declared id replaces its initial value, others become data too
    assert q["datamodel"]["count"] == 6 and q["datamodel"]["who"] == "ann"
    assert q["datamodel"]["last"] == {"k": "v"}
    r = await client.post(f"/scxml/session/{sid}/terminate", headers=CLIENT)
    assert (await r.json())["status"] == "cancelled"
    r = await client.post(f"/scxml/session/{sid}/event/bump", headers=CLIENT)
    assert r.status == 409 and (await r.json())["exception"] == "Conflict"
    r = await client.get("/scxml/sessions?flow=counter&status=cancelled", headers=CLIENT)
    assert [s["sessionid"] for s in (await r.json())["sessions"]] == [sid]


async def test_error_answers_are_json_with_a_clear_message(engine_client) -> None:
    client = await engine_client(max_body_bytes=2048, max_keys=5)
    cases = [
        (client.post("/scxml/session/start", data="{nope", headers={**CLIENT, "Content-Type": "application/json"}),
         400, "not valid JSON"),
        (client.post("/scxml/session/start", json=[1, 2], headers=CLIENT), 400, "must be an object"),
        (client.post("/scxml/session/start", json={"x": 1}, headers=CLIENT), 400, "'src'"),
        (client.post("/scxml/session/start", json={"src": "nope"}, headers=CLIENT), 404, "unknown flow 'nope'"),
        (client.post("/scxml/session/start", json={"src": "hello", "_sessionid": "x"}, headers=CLIENT),
         400, "reserved"),
        (client.post("/scxml/session/start", json={"src": "hello", **{f"k{i}": i for i in range(9)}},
                     headers=CLIENT), 400, "too many parameters"),
        (client.post("/scxml/session/start", data="x" * 5000, headers={**CLIENT, "Content-Type": "text/plain"}),
         413, "larger than 2048 bytes"),
        (client.post("/scxml/session/start", data="<a/>", headers={**CLIENT, "Content-Type": "text/xml"}),
         415, "JSON or a form"),
        (client.post("/scxml/session/missing/event/go", headers=CLIENT), 404, "no session 'missing'"),
        (client.post("/scxml/session/missing/event/bad%20name", headers=CLIENT), 400, "not a valid event name"),
        (client.get("/scxml/session/missing/query", headers=CLIENT), 404, "no session"),
        (client.post("/scxml/session/missing/terminate", headers=CLIENT), 404, "no session"),
        (client.get("/scxml/sessions?limit=0", headers=CLIENT), 400, "between 1 and 1000"),
        (client.get("/scxml/sessions?status=odd", headers=CLIENT), 400, "status must be"),
        (client.get("/scxml/sessions"), 401, "API key required"),
        (client.get("/admin/flows", headers=CLIENT), 403, "administrator key"),
        (client.get("/nowhere", headers=CLIENT), 403, "administrator key"),
        (client.get("/nowhere", headers=ADMIN), 404, "Not Found"),
    ]
    for request, status, text in cases:
        r = await request
        body = await r.json()
        assert r.status == status, (status, body)
        assert set(body) >= {"exception", "message"} and text in body["message"], body
    r = await client.get("/health")
    assert r.status == 200 and (await r.json())["status"] == "ok"


async def test_event_to_a_session_that_finished_is_409(engine_client) -> None:
    client = await engine_client()
    await put_flow(client, "counter", WAIT_FLOW)
    r = await client.post("/scxml/session/start", json={"src": "counter"}, headers=CLIENT)
    sid = (await r.json())["sessionid"]
    r = await client.post(f"/scxml/session/{sid}/event/stop", headers=CLIENT)
    assert (await r.json())["status"] == "finished"
    for path in (f"/scxml/session/{sid}/event/bump", f"/scxml/session/{sid}/terminate"):
        r = await client.post(path, headers=CLIENT)
        assert r.status == 409 and "has ended (finished)" in (await r.json())["message"]
    q = await (await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)).json()
    assert q["status"] == "finished" and q["active_states"] == ["end"]


async def test_non_persistent_session_lives_in_memory_only(engine_client) -> None:
    client = await engine_client()
    await put_flow(client, "counter", WAIT_FLOW)
    r = await client.post("/scxml/session/start?persistent=false", json={"src": "counter"}, headers=CLIENT)
    sid = (await r.json())["sessionid"]
    store = client.app[RUNTIME].manager.store
    assert await session_rows.get_session(store, sid) is None
    q = await (await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)).json()
    assert q["persistent"] is False and q["status"] == "running"
    listed = await (await client.get("/scxml/sessions?status=running", headers=CLIENT)).json()
    assert sid in [s["sessionid"] for s in listed["sessions"]]


async def test_engine_without_persistence_serves_the_same_api(engine_client) -> None:
    client = await engine_client(persistence=False)
    r = await client.post("/scxml/session/start", json={"src": "hello"}, headers=CLIENT)
    sid = (await r.json())["sessionid"]

    async def query() -> dict:
        return await (await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)).json()

    q = await eventually(query, lambda q: q["status"] != "running", timeout=3, expected="the session over")
    assert q["status"] == "finished" and q["final_state"] == "pass"
