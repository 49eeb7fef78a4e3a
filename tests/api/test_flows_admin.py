"""Flows: versions, hot swap (running sessions keep theirs), bad uploads change nothing,
the folder is watched."""

from __future__ import annotations

from engine.api.appkeys import RUNTIME
from tests.api.conftest import ADMIN, CLIENT
from tests.support.eventually import eventually

FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="idle">
<datamodel><data id="count" expr="0"/></datamodel>
<state id="idle"><transition event="bump"><assign location="count" expr="count + {step}"/></transition></state>
</scxml>"""


async def start(client, flow: str) -> str:
    r = await client.post("/scxml/session/start", json={"src": flow}, headers=CLIENT)
    assert r.status == 200, await r.text()
    return (await r.json())["sessionid"]


async def bump(client, sid: str) -> dict:
    await client.post(f"/scxml/session/{sid}/event/bump", headers=CLIENT)
    return await (await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)).json()


async def test_running_sessions_keep_their_version(engine_client) -> None:
    client = await engine_client()
    r = await client.put("/admin/flows/counter", data=FLOW.format(step=1), headers=ADMIN)
    assert (await r.json())["version"] == 1
    old = await start(client, "counter")
    r = await client.put("/admin/flows/counter", data=FLOW.format(step=10), headers=ADMIN)
    assert (await r.json())["version"] == 2
    new = await start(client, "counter")
    q_old, q_new = await bump(client, old), await bump(client, new)
    assert (q_old["version"], q_old["datamodel"]["count"]) == (1, 1)
    assert (q_new["version"], q_new["datamodel"]["count"]) == (2, 10)
    listed = await (await client.get("/admin/flows/counter", headers=ADMIN)).json()
    assert listed["current"] == 2 and [v["version"] for v in listed["versions"]] == [1, 2]
    text = await (await client.get("/admin/flows/counter?format=scxml&version=1", headers=ADMIN)).text()
    assert "count + 1" in text


async def test_a_bad_upload_is_refused_and_changes_nothing(engine_client) -> None:
    client = await engine_client()
    await client.put("/admin/flows/counter", data=FLOW.format(step=1), headers=ADMIN)
    bad = FLOW.format(step=1).replace('<state id="idle">', '<state id="idle">\n<transition target="nowhere"/>')
    r = await client.put("/admin/flows/counter", data=bad, headers=ADMIN)
    body = await r.json()
    assert r.status == 400 and body["exception"] == "InvalidFlow"
    assert body["problems"] == [{"line": 4, "column": 1, "message": "transition target 'nowhere' does not exist"}]
    assert "previous version keeps serving" in body["message"]
    listed = await (await client.get("/admin/flows/counter", headers=ADMIN)).json()
    assert listed["current"] == 1 and len(listed["versions"]) == 1 and listed["refused"]
    assert (await bump(client, await start(client, "counter")))["datamodel"]["count"] == 1
    for data, message in (("<scxml", "malformed XML"), ("", "body must be the SCXML")):
        r = await client.put("/admin/flows/counter", data=data, headers=ADMIN)
        assert r.status == 400 and message in str(await r.json())
    r = await client.put("/admin/flows/..hidden", data=FLOW.format(step=1), headers=ADMIN)
    assert r.status == 400 and "flow name" in (await r.json())["message"]


async def test_the_folder_is_watched(engine_client) -> None:
    client = await engine_client()
    folder = client.app[RUNTIME].flows.folder
    (folder / "dropped.scxml").write_text(FLOW.format(step=3))

    async def listed() -> dict:
        return (await (await client.get("/admin/flows", headers=ADMIN)).json())["flows"]

    await eventually(listed, lambda flows: "dropped" in flows, timeout=3, expected="'dropped' listed")
    sid = await start(client, "dropped")
    assert (await bump(client, sid))["datamodel"]["count"] == 3
    # A broken file dropped over it is refused; version 1 keeps serving.
    (folder / "dropped.scxml").write_text("<scxml><state id='a'><transition target='b'/></state></scxml>")
    flows = await eventually(listed, lambda flows: flows["dropped"]["refused"], timeout=3,
                             expected="the broken file refused")
    assert flows["dropped"]["current"] == 1
    assert "does not exist" in flows["dropped"]["refused"][0]
    # Removing the file stops new sessions; the running one goes on.
    (folder / "dropped.scxml").unlink()

    async def start_status() -> int:
        return (await client.post("/scxml/session/start", json={"src": "dropped"}, headers=CLIENT)).status

    await eventually(start_status, lambda status: status == 404, timeout=3, expected="404 for the removed flow")
    assert (await bump(client, sid))["datamodel"]["count"] == 6
    r = await client.post("/admin/flows/reload", headers=ADMIN)
    assert r.status == 200 and "reloaded" in await r.json()
