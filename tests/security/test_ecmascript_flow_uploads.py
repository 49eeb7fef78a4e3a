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


def nested_flow(depth: int, terms: int) -> bytes:
    """Valid JavaScript the local evaluator's parser would walk by recursion: ``depth``
    parentheses around ``1``, then a sum of ``terms`` ones."""
    deep = "(" * depth + "1" + ")" * depth
    long_sum = "+".join(["1"] * terms)
    return f"""<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript" initial="s">
  <datamodel><data id="n" expr="{deep}"/><data id="m" expr="0"/></datamodel>
  <state id="s"><transition event="go"><assign location="m" expr="{'!' * depth}true ? {long_sum} : 0"/>
  </transition></state></scxml>""".encode()


async def test_deeply_nested_expressions_upload_and_run_or_are_refused_clearly(engine_client):  # noqa: F811
    client = await engine_client(developer_key="dev-key")
    r = await client.put("/admin/flows/nested", data=nested_flow(300, 3000), headers=DEVELOPER)
    assert r.status == 200, await r.text()  # QuickJS takes it: so must the engine
    r = await client.post("/scxml/session/start", json={"src": "nested"}, headers=CLIENT)
    sid = (await r.json())["sessionid"]
    r = await client.post(f"/scxml/session/{sid}/event/go", headers=CLIENT)
    assert r.status == 200, await r.text()
    found = await (await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)).json()
    assert found["datamodel"] == {"n": 1, "m": 3000}, found
    # Deeper than QuickJS itself parses: a 400 naming the line, never a 500.
    r = await client.put("/admin/flows/nested", data=nested_flow(50_000, 1), headers=DEVELOPER)
    body = await r.json()
    assert r.status == 400, body
    assert body["problems"] and body["problems"][0]["line"] == 2, body
    assert "recursion too deep" in body["problems"][0]["message"], body


def parallel_flow(regions: int) -> bytes:
    """One parallel state of ``regions`` regions, each taking ``go`` back to itself: every
    region's transition conflicts with every other's, and each exits the whole configuration."""
    body = "".join(f'<state id="p{i}"><transition event="go" target="p{i}"/></state>' for i in range(regions))
    return (f'<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript" initial="P">\n'
            f'<parallel id="P">{body}</parallel></scxml>').encode()


async def test_a_parallel_state_too_wide_for_one_step_is_refused_at_upload(engine_client):  # noqa: F811
    """3,000 regions (within the body limit) held the event loop 1.5 s per ``go``, for every
    session of the engine: the microstep's cost grows with the square of the states active at
    once, in one step that no turn budget can cut."""
    client = await engine_client(developer_key="dev-key")
    r = await client.put("/admin/flows/wide", data=parallel_flow(3000), headers=DEVELOPER)
    body = await r.json()
    assert r.status == 400, body
    [problem] = body["problems"]
    assert problem["line"] == 2 and "3000 states active at once" in problem["message"], problem
    assert "at most 128" in problem["message"], problem
    r = await client.post("/scxml/session/start", json={"src": "wide"}, headers=CLIENT)
    assert r.status == 404  # nothing was registered
    r = await client.put("/admin/flows/wide", data=parallel_flow(128), headers=DEVELOPER)
    assert r.status == 200, await r.text()
    r = await client.post("/scxml/session/start", json={"src": "wide"}, headers=CLIENT)
    sid = (await r.json())["sessionid"]
    r = await client.post(f"/scxml/session/{sid}/event/go", headers=CLIENT)
    assert r.status == 200, await r.text()
    found = await (await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)).json()
    assert len(found["active_states"]) == 129, found


async def test_a_flow_in_another_encoding_than_utf8_is_refused_not_a_500(engine_client):  # noqa: F811
    """A UTF-16 document with its XML declaration parses, but a flow is stored as UTF-8 text:
    the upload answered 500 (UnicodeDecodeError when the version was saved)."""
    client = await engine_client(developer_key="dev-key")
    text = ('<?xml version="1.0" encoding="UTF-16"?>\n<scxml xmlns="http://www.w3.org/2005/07/scxml" '
            'version="1.0" datamodel="ecmascript"><state id="s"/></scxml>')
    r = await client.put("/admin/flows/utf16", data=text.encode("utf-16"), headers=DEVELOPER)
    body = await r.json()
    assert r.status == 400, body
    [problem] = body["problems"]
    assert "must be UTF-8" in problem["message"] and "byte 0 (0xff)" in problem["message"], problem
    r = await client.get("/admin/flows/utf16", headers=DEVELOPER)
    assert r.status == 404, await r.text()  # nothing registered, no file left behind
    r = await client.put("/admin/flows/utf16", data=text.replace("UTF-16", "UTF-8").encode(), headers=DEVELOPER)
    assert r.status == 200, await r.text()
