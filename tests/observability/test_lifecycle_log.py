"""Issue 12 item 4: a real engine process logging JSON. Every line is JSON, the first included; a
callback leaves a trail of lifecycle lines carrying callback_id, session_id and service as fields:
at INFO its creation and its outcome, at DEBUG also each state and its session's start and end
(issue 15); a session that is not a callback's has its start and end at INFO; a flow's <log> line
carries its session id; every request has an access line with the key's NAME and never a key."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import ClientSession

from tests.callbacks.conftest import write_config
from tests.conftest import REPO
from tests.support.engine_process import ADMIN_KEY, CLIENT_KEY, DEVELOPER_KEY, EngineProcess
from tests.support.eventually import eventually

BASE = "/genesys/1/service/callback"
WRONG_KEY = "not-a-key-but-a-secret-all-the-same"


async def _traffic(engine: EngineProcess) -> tuple[str, str]:
    """A callback run to COMPLETED and a hello session started; their ids."""
    client = {"x-api-key": CLIENT_KEY}
    async with ClientSession(engine.url) as http:
        async with http.post(f"{BASE}/callback", json={"_customer_number": "+15550700001"}, headers=client) as r:
            assert r.status == 200, await r.text()
            cid = (await r.json())["_id"]

        async def state() -> str:
            async with http.get(f"{BASE}?_id={cid}", headers=client) as r:
                return (await r.json())[0]["_callback_state"]

        await eventually(state, lambda s: s == "COMPLETED", timeout=20, expected="the callback COMPLETED")
        async with http.post("/scxml/session/start", data={"src": "hello"}, headers=client) as r:
            assert r.status == 200, await r.text()
            sid = (await r.json())["sessionid"]
        async with http.get("/health/live") as r:
            assert r.status == 200  # a probe: its access line is DEBUG, below this engine's INFO
        async with http.get("/metrics") as r:
            assert r.status == 401  # refused at the door: still one access line
        async with http.get("/metrics", headers={"Authorization": f"Bearer {WRONG_KEY}"}) as r:
            assert r.status == 401
    return cid, sid


def _lines(engine: EngineProcess) -> list[dict]:
    text = engine.log_path.read_text()
    for secret in (ADMIN_KEY, CLIENT_KEY, DEVELOPER_KEY, WRONG_KEY):
        assert secret not in text
    lines = text.splitlines()
    assert lines, "the engine logged nothing"
    return [json.loads(line) for line in lines]  # every line, the first one included, is JSON


async def _run(tmp_path: Path, level: str) -> tuple[str, str, list[dict]]:
    """An engine logging JSON at ``level`` through ``_traffic``: the callback's id, the hello
    session's id and the log's lines."""
    engine = EngineProcess(tmp_path / "data", REPO / "scxml", config_dir=str(write_config(tmp_path)),
                           log_format="json", log_level=level)
    await engine.start()
    try:
        cid, sid = await _traffic(engine)
        await eventually(lambda: engine.log_path.read_text(), lambda text: f'"session_id":"{sid}"' in text
                         and '"message":"session ended"' in text.split(sid, 1)[-1], timeout=10,
                         expected="the hello session's end logged")
    finally:
        assert engine.stop() == 0
    return cid, sid, _lines(engine)


async def test_a_json_log_follows_a_callback_and_every_request(tmp_path: Path) -> None:
    cid, sid, lines = await _run(tmp_path, "INFO")
    assert "callback engine on" in lines[0]["message"] or "callback engine on" in lines[1]["message"]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)

    # At INFO a callback says what was asked and how it ended; the steps between are DEBUG lines.
    trail = [line for line in lines if line["logger"] == "engine.lifecycle" and line.get("callback_id") == cid]
    assert [(line["message"], line.get("state"), line["level"]) for line in trail] == [
        ("callback created", None, "INFO"), ("callback completed", "COMPLETED", "INFO")]
    assert all(line["service"] == "callback" for line in trail)
    assert trail[0]["session_id"] is None and trail[1]["session_id"]  # created before its flow's session
    assert trail[1]["reason"] == "AGENT_CONNECTED"

    # A session of its own (not a callback's) has its start and end at INFO.
    hello = [(line["message"], line["level"]) for line in lines
             if line["logger"] == "engine.lifecycle" and line.get("session_id") == sid]
    assert hello == [("session started", "INFO"), ("session ended", "INFO")]

    flow_log = [line for line in lines if line["logger"] == "engine.scxml.log"]
    assert {"message": "flow: waiting half a second", "session_id": sid} in [
        {"message": line["message"], "session_id": line.get("session_id")} for line in flow_log]

    access = [line for line in lines if line["logger"] == "engine.access"]
    create = next(line for line in access if line["method"] == "POST" and line["route"] == f"{BASE}/{{service}}")
    assert create["status"] == 200 and create["key"] == "env-client" and create["ms"] >= 0
    refused = [line for line in access if line["route"] == "/metrics"]
    assert [(line["status"], line["key"]) for line in refused] == [(401, "-"), (401, "-")]
    assert not [line for line in access if cid in line["route"]]  # the pattern, never the path
    assert not [line for line in access if line["route"].startswith("/health")]  # probes: DEBUG only


async def test_at_debug_a_callback_leaves_every_step(tmp_path: Path) -> None:
    cid, _, lines = await _run(tmp_path, "DEBUG")
    trail = [line for line in lines if line["logger"] == "engine.lifecycle" and line.get("callback_id") == cid]
    said = [(line["message"], line.get("state"), line["level"]) for line in trail]
    assert said[0] == ("callback created", None, "INFO")
    for step in (("session started", None, "DEBUG"), ("callback state changed", "QUEUED", "DEBUG"),
                 ("callback state changed", "ROUTING", "DEBUG"), ("callback state changed", "PROCESSING", "DEBUG"),
                 ("callback completed", "COMPLETED", "INFO"), ("session ended", None, "DEBUG")):
        assert step in said, (step, said)
    assert [m for m, _, _ in said[:3]] == ["callback created", "callback state changed", "session started"]
    session = trail[2]["session_id"]
    for i, line in enumerate(trail):
        assert line["service"] == "callback"
        # Created, then QUEUED as its flow is submitted, before the flow's session exists.
        assert line["session_id"] == (None if i < 2 else session), line
    probes = [line for line in lines if line["logger"] == "engine.access" and line["route"] == "/health/live"]
    assert probes and all(line["level"] == "DEBUG" for line in probes)
