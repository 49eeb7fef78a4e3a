"""Issue 9 item 3 (first half): a session id alone grants nothing at ``POST /basichttp/<sid>``.

The access URI carries a capability derived from the engine's data key; without it the answer is
the 404 of an unknown session and nothing changes. The capability survives a restart, never shows
in listings, queries or outgoing headers, and the receiver refuses JSON nested too deep."""

from __future__ import annotations

from aiohttp import ClientSession

from engine.api.appkeys import RUNTIME
from engine.app import create_app
from tests.security.outbound_support import CLIENT, Peer, engine_settings, start_engine
from tests.support.eventually import eventually, stays_false

WAITER = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="waiting">
<datamodel><data id="got" expr="None"/><data id="sink" expr="''"/></datamodel>
<state id="waiting">
  <onentry><if cond="sink"><send event="hello" type="basichttp" targetexpr="sink"/></if></onentry>
  <transition event="poke" target="poked"><assign location="got" expr="_event.data"/></transition>
</state>
<state id="poked"><transition event="again" target="done"/></state>
<final id="done"/>
</scxml>"""


def flows_dir(tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "waiter.scxml").write_text(WAITER)
    return flows


async def start_waiter(client, **data) -> str:
    r = await client.post("/scxml/session/start", json={"src": "waiter", **data}, headers=CLIENT)
    assert r.status == 200, await r.text()
    return (await r.json())["sessionid"]


def location(client, sid: str) -> str:
    """What the flow sees in ``_ioprocessors['basichttp']['location']`` (tests read it in-process;
    nothing the engine serves shows it)."""
    session = client.server.app[RUNTIME].manager.sessions[sid]
    return session.datamodel.variable("_ioprocessors")["basichttp"]["location"]


async def query(client, sid: str) -> dict:
    return await (await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)).json()


async def poked(client, sid: str) -> dict:
    """The session's state once the poke has reached it."""
    return await eventually(lambda: query(client, sid), lambda state: "poked" in state["active_states"], timeout=6,
                            expected="the session in 'poked'")


async def test_a_session_id_alone_gets_404_and_changes_nothing(aiohttp_client, tmp_path) -> None:
    client = await start_engine(aiohttp_client, engine_settings(tmp_path, {}, flows=flows_dir(tmp_path)))
    sid = await start_waiter(client)
    loc = location(client, sid)
    base = str(client.make_url(""))
    assert loc.startswith(f"{base}/basichttp/{sid}/") and len(loc.rsplit("/", 1)[1]) >= 32
    cap = loc.rsplit("/", 1)[1]
    unknown = "0" * 32
    near = cap[:-1] + ("x" if cap[-1] != "x" else "y")  # one character off (a capability may end in x)
    shapes = ("/basichttp/{}", "/basichttp/{}/", "/basichttp/{}/wrong-capability", "/basichttp/{}/" + near)
    for shape in shapes:
        answers = []
        for who in (sid, unknown):  # the same answer whether or not the session exists
            r = await client.post(shape.format(who), data={"_scxmleventname": "poke", "reason": "AGENT_CONNECTED"})
            answers.append((r.status, await r.json()))
        assert answers[0][0] == 404 and answers[0] == answers[1], (shape, answers)
    r = await client.post(f"/basichttp/{unknown}/{cap}", data={"_scxmleventname": "poke"})
    assert r.status == 404  # a capability is bound to its session

    async def moved_on() -> dict | None:
        state = await query(client, sid)
        return None if state["status"] == "running" and "waiting" in state["active_states"] else state

    await stays_false(moved_on, 0.1, what="the session leaving 'waiting'")
    # the real access URI works
    async with ClientSession() as http, http.post(loc, data={"_scxmleventname": "poke", "n": "1"}) as r:
        assert r.status == 200
    state = await poked(client, sid)
    assert "poked" in state["active_states"] and state["datamodel"]["got"] == {"n": 1}


async def test_capability_is_not_shown_anywhere_and_not_sent(aiohttp_client, tmp_path) -> None:
    peer = await Peer().start()
    try:
        settings = engine_settings(tmp_path, {"allowed_networks": ["127.0.0.0/8"]}, flows=flows_dir(tmp_path))
        client = await start_engine(aiohttp_client, settings)
        sid = await start_waiter(client, sink=peer.url())
        capability = location(client, sid).rsplit("/", 1)[1]
        await eventually(lambda: peer.requests, timeout=10, expected="the flow's send")
        shown = [await (await client.get(path, headers=CLIENT)).text()
                 for path in (f"/scxml/session/{sid}/query", "/scxml/sessions", "/scxml/sessions?flow=waiter")]
        assert all(sid in text for text in shown[:2])
        for text in shown:
            assert capability not in text
        path, headers, body = peer.requests[0]
        assert "x-scxml-origin" not in {k.lower() for k in headers}
        assert capability not in path + repr(headers) + body.decode()
        assert sid not in path + repr(headers) + body.decode()
    finally:
        await peer.stop()


async def test_the_capability_survives_a_restart(aiohttp_client, tmp_path) -> None:
    settings = engine_settings(tmp_path, {}, flows=flows_dir(tmp_path))
    client = await start_engine(aiohttp_client, settings)
    sid = await start_waiter(client)
    loc = location(client, sid).replace(str(client.make_url("")), "")
    await client.close()  # the session is stored; the data key stays in data/secret.key
    again = await aiohttp_client(create_app(settings), server_kwargs={"port": settings.port})
    assert location(again, sid).replace(str(again.make_url("")), "") == loc
    r = await again.post(loc, data={"_scxmleventname": "poke", "n": "2"})
    assert r.status == 200
    state = await poked(again, sid)
    assert state["datamodel"]["got"] == {"n": 2}


async def test_deep_json_at_the_receiver_is_400_and_changes_nothing(aiohttp_client, tmp_path) -> None:
    client = await start_engine(aiohttp_client, engine_settings(tmp_path, {}, flows=flows_dir(tmp_path)))
    sid = await start_waiter(client)
    loc = location(client, sid)
    async with ClientSession() as http:
        for depth in (33, 800, 100_000):
            body = "[" * depth + "]" * depth
            async with http.post(loc + "?_scxmleventname=poke", data=body,
                                 headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400, depth
                assert "32" in (await r.json())["message"]
        ok = "[" * 32 + "]" * 32  # exactly the limit is accepted
        async with http.post(loc + "?_scxmleventname=poke", data=ok,
                             headers={"Content-Type": "application/json"}) as r:
            assert r.status == 200
    state = await poked(client, sid)
    assert "poked" in state["active_states"]  # only the accepted one arrived
    r = await client.get("/health", headers=CLIENT)
    assert r.status == 200
