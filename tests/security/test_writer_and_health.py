"""Issue 9 items 1 and 2: the storage writer cannot die, every JSON input has a depth limit,
a change that cannot be made durable answers 503 instead of hanging, SIGTERM always stops the
process, and ``/health/ready`` tells the truth."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession, ClientTimeout

from engine.api.appkeys import RUNTIME
from engine.app import create_app
from engine.sessions import rows as session_rows
from engine.settings import Settings
from tests.api.conftest import ADMIN, CLIENT
from tests.conftest import REPO
from tests.support.engine_process import CLIENT_KEY, EngineProcess, free_port
from tests.support.eventually import eventually

# A flow whose own data nests deeper than any encoder can walk: its snapshot cannot be stored.
DEEP_FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python"
       name="deep" initial="wait">
  <datamodel><data id="nest" expr="None"/></datamodel>
  <state id="wait">
    <transition event="dig">
      <script>
top = []
cur = top
for _ in range(int(_event.data['levels'])):
    cur.append([])
    cur = cur[0]
nest = top
      </script>
    </transition>
  </state>
</scxml>
"""


def deep_json(levels: int) -> str:
    return "[" * levels + "]" * levels


def make_settings(tmp_path: Path, **kw) -> Settings:
    flows = tmp_path / "flows"
    if not flows.exists():
        flows.mkdir()
        shutil.copy(REPO / "scxml" / "hello.scxml", flows)
        (flows / "deep.scxml").write_text(DEEP_FLOW)
    return Settings.load(config_dir=tmp_path / "config", env={}, data_dir=tmp_path / "data", flows_dir=flows,
                         admin_key="admin-key", client_key="client-key", flow_watch_interval=0.05, **kw)


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    """An engine with the default durability timeout: a busy machine may take more than a second
    to store a change, and only the test of the timeout itself needs it short."""
    port = free_port()
    return await aiohttp_client(create_app(make_settings(tmp_path, port=port)), server_kwargs={"port": port})


@pytest.fixture
async def impatient_client(aiohttp_client, tmp_path):
    """An engine that answers 503 when a change is not stored within one second."""
    port = free_port()
    return await aiohttp_client(create_app(make_settings(tmp_path, port=port, durability_timeout=1.0)),
                                server_kwargs={"port": port})


async def start(client, src: str, **params) -> dict:
    r = await client.post("/scxml/session/start", data={"src": src, **params}, headers=CLIENT)
    body = await r.json()
    assert r.status == 200, body
    return body


JSON_ENDPOINTS = [
    ("POST", "/scxml/session/start", CLIENT),
    ("POST", "/genesys/1/service/callback/callback", CLIENT),
    ("POST", "/genesys/1/notification/subscription", CLIENT),
    ("POST", "/genesys/1/notification/publish", CLIENT),
    ("PUT", "/admin/services/x", ADMIN),
    ("PUT", "/admin/business-hours/x", ADMIN),
    ("PUT", "/admin/callback-settings/Callback_VQ", ADMIN),
    ("PUT", "/admin/push/credentials", ADMIN),
]


@pytest.mark.parametrize("levels", [33, 800, 100_000])
async def test_deeply_nested_json_is_refused_at_every_json_endpoint(client, levels):
    sid = (await start(client, "deep"))["sessionid"]
    endpoints = [*JSON_ENDPOINTS, ("POST", f"/scxml/session/{sid}/event/dig", CLIENT)]
    body = deep_json(levels) if levels > 33 else json.dumps({"a": json.loads(deep_json(32))})
    for method, path, headers in endpoints:
        r = await client.request(method, path, data=body,
                                 headers={**headers, "Content-Type": "application/json"})
        answer = await r.json()
        assert r.status == 400, (path, r.status, answer)
        assert "nested too deeply" in answer["message"], (path, answer)
    # 32 levels is still fine
    r = await client.post(f"/scxml/session/{sid}/event/ping", data=json.dumps({"a": json.loads(deep_json(31))}),
                          headers={**CLIENT, "Content-Type": "application/json"})
    assert r.status == 200, await r.text()


async def test_a_lone_surrogate_is_refused_at_every_json_endpoint_and_changes_nothing(client):
    """JSON may write half a UTF-16 pair ("\\ud800"): no Unicode text, so no snapshot or row can
    hold it. A callback created with one answered 200 and completed FAIL_ERROR at once ("its state
    cannot be stored"); every JSON input now refuses it with 400 naming where it is."""
    sid = (await start(client, "deep"))["sessionid"]
    endpoints = [*JSON_ENDPOINTS, ("POST", f"/scxml/session/{sid}/event/dig", CLIENT)]
    for body in ('{"order": "x\\ud800", "_customer_number": "+15551230000"}', '{"a": [{"\\udfffk": 1}]}'):
        for method, path, headers in endpoints:
            r = await client.request(method, path, data=body, headers={**headers, "Content-Type": "application/json"})
            answer = await r.json()
            assert r.status == 400, (path, r.status, answer)
            assert "lone UTF-16 surrogate" in answer["message"], (path, answer)
            assert "$.order" in answer["message"] or "$.a[0]" in answer["message"], (path, answer)
    r = await client.get("/genesys/1/service/callback?_customer_number=%2B15551230000", headers=CLIENT)
    assert r.status in (200, 404) and not (await r.json() if r.status == 200 else []), await r.text()
    # a pair written as two escapes is one character, and welcome
    r = await client.post(f"/scxml/session/{sid}/event/ping", data='{"smile": "\\ud83d\\ude00"}',
                          headers={**CLIENT, "Content-Type": "application/json"})
    assert r.status == 200, await r.text()


async def test_a_session_that_cannot_be_stored_fails_alone_and_the_writer_goes_on(client):
    victim = (await start(client, "deep"))["sessionid"]
    bystander = (await start(client, "deep"))["sessionid"]
    # The flow builds data 5,000 levels deep itself: the snapshot encoder cannot walk it.
    r = await client.post(f"/scxml/session/{victim}/event/dig", data={"levels": "5000"}, headers=CLIENT)
    assert r.status == 200, await r.text()
    r = await client.get(f"/scxml/session/{victim}/query", headers=CLIENT)
    found = await r.json()
    assert found["status"] == "failed", found
    assert "cannot be stored" in found["error"], found
    # The writer is alive: other sessions still change and are stored; new ones start.
    r = await client.post(f"/scxml/session/{bystander}/event/dig", data={"levels": "3"}, headers=CLIENT)
    assert r.status == 200
    hello = await start(client, "hello", greeting="hi")
    manager = client.app[RUNTIME].manager
    assert manager.writer_status()["alive"]
    row = await session_rows.get_session(manager.store, victim)
    assert row["status"] == "failed" and "cannot be stored" in json.loads(row["snapshot"])["error"]
    row = await session_rows.get_session(manager.store, bystander)
    assert json.loads(row["snapshot"])["data"]["nest"] == [[[[]]]]
    assert (await session_rows.get_session(manager.store, hello["sessionid"])) is not None
    r = await client.get("/health/ready")
    assert r.status == 200, await r.text()


async def test_failing_storage_answers_503_then_recovers_without_loss(impatient_client, monkeypatch):
    client = impatient_client
    manager = client.app[RUNTIME].manager
    store = manager.store
    real_write = store.write

    async def disk_full(unit):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write", disk_full)
    t0 = time.monotonic()
    r = await client.post("/scxml/session/start", data={"src": "deep"}, headers=CLIENT)
    waited = time.monotonic() - t0
    body = await r.json()
    assert r.status == 503, body
    assert "not stored within 1 s" in body["message"] and "No space left" in body["message"], body
    assert waited < 5, waited
    # Now storage is known to fail: a new change is refused at once and changes nothing.
    sessions_before = len(manager.sessions)
    t0 = time.monotonic()
    r = await client.post("/scxml/session/start", data={"src": "hello"}, headers=CLIENT)
    assert r.status == 503 and time.monotonic() - t0 < 0.5
    assert "storage is failing" in (await r.json())["message"]
    assert len(manager.sessions) == sessions_before
    r = await client.post("/genesys/1/service/callback/callback", json={"_customer_number": "+15551230000"},
                          headers=CLIENT)  # a create no longer hangs on a full disk
    assert r.status == 503 and "No space left" in (await r.json())["message"]
    r = await client.get("/health/ready")
    ready = await r.json()
    assert r.status == 503, ready
    assert "the disk is full" in ready["reasons"], ready
    assert ready["checks"]["storage"]["disk_full"] is True
    r = await client.get("/health/live")
    assert r.status == 200
    # Storage comes back: what was accepted in memory is written, readiness returns.
    monkeypatch.setattr(store, "write", real_write)

    async def readiness() -> tuple[int, str]:
        r = await client.get("/health/ready")
        return r.status, await r.text()

    await eventually(readiness, lambda got: got[0] == 200, timeout=10, interval=0.1, expected="ready again")
    rows = await session_rows.list_sessions(store, flow="deep")
    assert len(rows) == 1  # the session whose answer was 503 was kept and stored once storage recovered


async def test_sigterm_stops_the_engine_while_its_database_is_gone(tmp_path):
    from tests.support.postgres import TempPostgres

    pg = TempPostgres().start()
    try:  # the server is stopped with -m immediate below: the database vanishes under a running engine
        flows = tmp_path / "flows"
        flows.mkdir()
        shutil.copy(REPO / "scxml" / "hello.scxml", flows)
        engine = EngineProcess(tmp_path / "data", flows, database_url=pg.new_database(),
                               durability_timeout="1.5")
        await engine.start()
        headers = {"x-api-key": CLIENT_KEY}
        async with ClientSession(timeout=ClientTimeout(total=20)) as http:
            async with http.post(engine.url + "/scxml/session/start", data={"src": "hello"}, headers=headers) as r:
                assert r.status == 200, await r.text()
            pg._run(f"{pg.bindir}/pg_ctl", "-D", str(Path(pg.dir) / "data"), "-m", "immediate", "stop")
            t0 = time.monotonic()
            async with http.post(engine.url + "/scxml/session/start", data={"src": "hello"}, headers=headers) as r:
                assert r.status == 503, await r.text()
            assert time.monotonic() - t0 < 8
            async with http.get(engine.url + "/health/ready") as r:
                ready = await r.json()
                assert r.status == 503 and any("storage" in reason for reason in ready["reasons"]), ready
            async with http.get(engine.url + "/health/live") as r:
                assert r.status == 200
        t0 = time.monotonic()
        code = engine.stop(timeout=15)
        stopped_in = time.monotonic() - t0
        print(f"SIGTERM with the database gone: exit {code} after {stopped_in:.2f} s")
        assert code == 0, engine.log()
        assert stopped_in < 10
        assert "stopping with changes not stored" in engine.log()
    finally:
        try:
            pg.stop()
        except Exception:  # already stopped above; pg.stop removed its folder anyway
            pass


# The same flow as a callback's flow, digging by itself as soon as it starts.
DEEP_CALLBACK_FLOW = DEEP_FLOW.replace('name="deep"', 'name="deepcb"').replace(
    '<state id="wait">', '<state id="wait"><onentry><send event="dig"><param name="levels" expr="5000"/></send>'
    '</onentry>')


async def callback_engine(aiohttp_client, tmp_path: Path, service: str, flow: str, text: str):
    """The callback tests' engine, plus one service running a flow of this test's own."""
    from tests.callbacks.conftest import write_config

    config = write_config(tmp_path)
    (config / "services" / f"{service}.json").write_text(json.dumps({"_service": flow}))
    flows = tmp_path / "flows"
    shutil.copytree(REPO / "scxml", flows)
    (flows / f"{flow}.scxml").write_text(text)
    port = free_port()
    settings = Settings.load(config_dir=config, env={}, data_dir=tmp_path / "data", flows_dir=flows,
                             admin_key="admin-key", client_key="client-key", flow_watch_interval=0, port=port)
    return await aiohttp_client(create_app(settings), server_kwargs={"port": port})


async def failed_callback(client, service: str, number: str) -> dict:
    """A callback of ``service`` run to COMPLETED with FAIL_ERROR: its record."""
    from tests.callbacks.conftest import create, wait_state

    done = await wait_state(client, await create(client, service, _customer_number=number), "COMPLETED", timeout=10)
    assert done["_callback_reason"] == "FAIL_ERROR", done
    return done


async def an_ordinary_callback_still_completes(client, number: str) -> None:
    """The engine goes on after what a test broke: a callback of the default service completes."""
    from tests.callbacks.conftest import create, wait_state

    other = await create(client, "callback", _customer_number=number)
    assert (await wait_state(client, other, "COMPLETED"))["_callback_reason"] == "AGENT_CONNECTED"


async def test_a_callback_whose_session_cannot_be_stored_completes_with_fail_error(aiohttp_client, tmp_path):
    client = await callback_engine(aiohttp_client, tmp_path, "deep", "deepcb", DEEP_CALLBACK_FLOW)
    await failed_callback(client, "deep", "+15551239999")
    await an_ordinary_callback_still_completes(client, "+15551238888")


UPDATE_FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" xmlns:cb="urn:callback-engine:callback"
       version="1.0" datamodel="python" name="updater" initial="s">
  <datamodel><data id="outcome" expr="''"/></datamodel>
  <state id="s">
    <onentry>
      <script>
deep = []
cur = deep
for _ in range(40):
    cur.append([])
    cur = cur[0]
      </script>
      <cb:update><param name="bad" expr="deep"/></cb:update>
    </onentry>
    <transition event="error.execution" target="go">
      <assign location="outcome" expr="_event.data"/>
    </transition>
  </state>
  <state id="go"><onentry><cb:update><param name="outcome" expr="str(outcome)[:300]"/></cb:update>
    <cb:complete reason="FAIL_ERROR"/></onentry></state>
</scxml>
"""


async def test_a_flow_cannot_put_unstorable_values_into_a_record(aiohttp_client, tmp_path):
    """A record is written with every batch: a value that cannot be encoded must be refused where
    the flow sets it (error.execution), never reach the writer."""
    from tests.callbacks.conftest import ADMIN as CB_ADMIN
    from tests.callbacks.conftest import create, wait_state

    client = await callback_engine(aiohttp_client, tmp_path, "upd", "updater", UPDATE_FLOW)
    cid = await create(client, "upd", _customer_number="+15551237777")
    done = await wait_state(client, cid, "COMPLETED", timeout=10)
    assert "bad" not in done and "nests deeper than 32" in done["outcome"], done
    await an_ordinary_callback_still_completes(client, "+15551236666")
    # and a transaction list cannot smuggle deep JSON in either
    text = "[_cbe_on_service_create]\nnotify_custom = " + "{\"a\":" * 40 + "1" + "}" * 40 + "\n"
    r = await client.put("/admin/transaction-lists/deep", data=text, headers=CB_ADMIN)
    body = await r.json()
    assert r.status == 400 and "nested deeper" in body["message"], body


# An ECMAScript (sandboxed, developer-uploadable) callback flow whose variable fits in its context
# but not in the copy that saving it makes: its variables cannot even be read out.
HUGE_CALLBACK_FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript"
       name="hugecb" initial="wait">
  <state id="wait">
    <onentry><script>var s = 'x'; try { while (true) { s += s; } } catch (e) {}</script></onentry>
  </state>
</scxml>
"""


async def test_an_ecmascript_callback_whose_variables_cannot_be_saved_completes_with_fail_error(
        aiohttp_client, tmp_path, caplog):
    client = await callback_engine(aiohttp_client, tmp_path, "huge", "hugecb", HUGE_CALLBACK_FLOW)
    done = await failed_callback(client, "huge", "+15551239997")
    sid = done["_ors_session_id"]
    r = await client.get(f"/scxml/session/{sid}/query", headers=CLIENT)
    found = await r.json()
    assert r.status == 200, found
    assert found["status"] == "failed" and "cannot be saved" in found["error"], found
    manager = client.app[RUNTIME].manager
    assert sid not in manager.sessions
    row = await session_rows.get_session(manager.store, sid)
    assert row["status"] == "failed" and "cannot be saved" in json.loads(row["snapshot"])["error"]
    assert "storage writer error" not in caplog.text
    await an_ordinary_callback_still_completes(client, "+15551239996")


# An ECMAScript callback flow whose data fits its context (32 MB) but not what a session may
# store (max_session_state_bytes, 1 MiB by default): written at every macrostep and held while
# it runs, a thousand such callbacks would hold gigabytes.
BULKY_CALLBACK_FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript"
       name="bulkycb" initial="wait">
  <datamodel><data id="bulk" expr="'x'.repeat(2 * 1024 * 1024)"/></datamodel>
  <state id="wait"/>
</scxml>
"""


async def test_an_ecmascript_callback_whose_state_is_too_large_to_store_completes_with_fail_error(
        aiohttp_client, tmp_path):
    client = await callback_engine(aiohttp_client, tmp_path, "bulky", "bulkycb", BULKY_CALLBACK_FLOW)
    done = await failed_callback(client, "bulky", "+15551239995")
    sid = done["_ors_session_id"]
    manager = client.app[RUNTIME].manager
    row = await session_rows.get_session(manager.store, sid)
    error = json.loads(row["snapshot"])["error"]
    assert row["status"] == "failed" and "max_session_state_bytes" in error and "it is 2,09" in error, error
    assert len(row["snapshot"]) < 2_000
    await an_ordinary_callback_still_completes(client, "+15551239994")


# A flow (a developer may upload one) trying to write the service's own fields of its record.
FORGER_FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" xmlns:cb="urn:callback-engine:callback"
       version="1.0" datamodel="python" name="forger" initial="s">
  <datamodel><data id="errors" expr="[]"/></datamodel>
  <state id="s">
    <onentry><cb:update><param name="_callback_state" expr="'COMPLETED'"/></cb:update></onentry>
    <onentry><cb:update><param name="_id" expr="'someone-else'"/></cb:update></onentry>
    <onentry><cb:update><param name="_service_name" expr="'callback'"/><param name="note" expr="'x'"/></cb:update>
    </onentry>
    <onentry><cb:update><param name="_expiration_time" expr="'not a time'"/></cb:update></onentry>
    <onentry><cb:update><param name="_access_code" expr="'1234'"/></cb:update><raise event="check"/></onentry>
    <transition event="error.execution">
      <assign location="errors" expr="errors + [_event.data['message']]"/>
    </transition>
    <transition event="check" target="go"/>
  </state>
  <state id="go"><onentry><cb:update><param name="outcome" expr="' | '.join(errors)[:2000]"/></cb:update>
    <cb:complete reason="AGENT_CONNECTED"/></onentry></state>
</scxml>
"""


async def test_a_flow_cannot_set_the_services_own_fields_of_its_record(aiohttp_client, tmp_path):
    """Its state changes only through the lifecycle (the python-statemachine chart), its identity
    and times never: each such <cb:update> is error.execution naming the key, and changes nothing."""
    from tests.callbacks.conftest import create, wait_state

    client = await callback_engine(aiohttp_client, tmp_path, "forge", "forger", FORGER_FLOW)
    cid = await create(client, "forge", _customer_number="+15551239993")
    done = await wait_state(client, cid, "COMPLETED", timeout=10)
    assert done["_callback_reason"] == "AGENT_CONNECTED" and done["_id"] == cid, done
    assert done["_service_name"] == "forge" and "note" not in done and done["_access_code"] == "1234", done
    assert done["_expiration_time"].endswith("Z")
    for key in ("_callback_state", "_id", "_service_name", "_expiration_time"):
        assert f"a flow cannot set {key}" in done["outcome"], done["outcome"]
