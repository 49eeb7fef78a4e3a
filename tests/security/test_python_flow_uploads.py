"""Issue 9 item 7: a python-datamodel flow is engine code, so uploading one is the
administrator's decision; a developer uploads sandboxed (null, ecmascript) flows only, unless
the ``developers_upload_python_flows`` setting says otherwise."""

from __future__ import annotations

from tests.api.conftest import ADMIN, engine_client  # noqa: F401 - fixture

DEVELOPER = {"x-api-key": "dev-key"}
PYTHON = b"""<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="s">
  <state id="s"><onentry><script>import os</script></onentry></state></scxml>"""
DEFAULT = PYTHON.replace(b' datamodel="python"', b"")  # no attribute: python, the default
NULL = b"""<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="null" initial="s">
  <state id="s"/></scxml>"""
INLINE_PYTHON_CHILD = b"""<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="null" initial="s">
  <state id="s"><invoke type="scxml"><content>
    <scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="c">
      <state id="c"/></scxml></content></invoke></state></scxml>"""


async def test_developers_upload_sandboxed_flows_only(engine_client):  # noqa: F811
    client = await engine_client(developer_key="dev-key")
    for name, text in (("py", PYTHON), ("default", DEFAULT), ("inline", INLINE_PYTHON_CHILD)):
        r = await client.put(f"/admin/flows/{name}", data=text, headers=DEVELOPER)
        body = await r.json()
        assert r.status == 403, (name, body)
        assert "python datamodel" in body["message"]
        r = await client.get("/admin/flows", headers=ADMIN)
        assert name not in (await r.json())["flows"]
    r = await client.put("/admin/flows/nullflow", data=NULL, headers=DEVELOPER)
    assert r.status == 200, await r.text()
    r = await client.put("/admin/flows/py", data=PYTHON, headers=ADMIN)
    assert r.status == 200, await r.text()


async def test_a_setting_lets_developers_upload_python_flows(engine_client):  # noqa: F811
    client = await engine_client(developer_key="dev-key", developers_upload_python_flows=True)
    r = await client.put("/admin/flows/py", data=PYTHON, headers=DEVELOPER)
    assert r.status == 200, await r.text()
