"""Issue 11 item 2: ecmascript flows are sandboxed, so a developer may upload them (python flows
need the administrator); one that inlines a python child for <invoke> still needs the administrator."""

from __future__ import annotations

from tests.api.conftest import ADMIN, CLIENT, engine_client  # noqa: F401 - fixture

DEVELOPER = {"x-api-key": "dev-key"}
ECMASCRIPT = b"""<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript" initial="s">
  <datamodel><data id="n" expr="1"/></datamodel>
  <state id="s"><transition event="bump"><assign location="n" expr="n * 2"/></transition></state></scxml>"""
PYTHON_CHILD = b"""<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript" initial="s">
  <state id="s"><invoke type="scxml"><content>
    <scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="c">
      <state id="c"/></scxml></content></invoke></state></scxml>"""


async def test_developers_upload_ecmascript_flows_and_they_run(engine_client):  # noqa: F811
    client = await engine_client(developer_key="dev-key")
    r = await client.put("/admin/flows/sandboxed", data=ECMASCRIPT, headers=DEVELOPER)
    assert r.status == 200, await r.text()
    r = await client.post("/scxml/session/start", json={"src": "sandboxed"}, headers=CLIENT)
    sid = (await r.json())["sessionid"]
    await client.post(f"/scxml/session/{sid}/event/bump", headers=CLIENT)
    found = await (await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)).json()
    assert found["datamodel"] == {"n": 2}


async def test_an_inlined_python_child_still_needs_the_administrator(engine_client):  # noqa: F811
    client = await engine_client(developer_key="dev-key")
    r = await client.put("/admin/flows/hidden", data=PYTHON_CHILD, headers=DEVELOPER)
    assert r.status == 403, await r.text()
    r = await client.put("/admin/flows/hidden", data=PYTHON_CHILD, headers=ADMIN)
    assert r.status == 200, await r.text()


async def test_start_parameters_cannot_replace_javascript_builtins(engine_client):  # noqa: F811
    client = await engine_client(developer_key="dev-key")
    await client.put("/admin/flows/sandboxed", data=ECMASCRIPT, headers=DEVELOPER)
    r = await client.post("/scxml/session/start", json={"src": "sandboxed", "JSON": 1}, headers=CLIENT)
    assert r.status == 400 and "ecmascript builtins" in (await r.json())["message"]
    r = await client.post("/scxml/session/start", json={"src": "sandboxed", "_genesys": 1}, headers=CLIENT)
    assert r.status == 400
