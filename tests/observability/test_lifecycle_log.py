"""Issue 12 item 4: a real engine process logging JSON. Every line is JSON, the first included; a
callback leaves a trail of lifecycle lines (created, each state, completed; its session started
and ended) carrying callback_id, session_id and service as fields; a flow's <log> line carries
its session id; every request has an access line with the key's NAME and never a key."""

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


async def test_a_json_log_follows_a_callback_and_every_request(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data", REPO / "scxml", config_dir=str(write_config(tmp_path)),
                           log_format="json")
    await engine.start()
    try:
        cid, sid = await _traffic(engine)
        await eventually(lambda: engine.log_path.read_text(), lambda text: f'"session_id":"{sid}"' in text
                         and '"message":"session ended"' in text.split(sid, 1)[-1], timeout=10,
                         expected="the hello session's end logged")
    finally:
        assert engine.stop() == 0
    lines = _lines(engine)
    assert "callback engine on" in lines[0]["message"] or "callback engine on" in lines[1]["message"]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)

    trail = [line for line in lines if line["logger"] == "engine.lifecycle" and line.get("callback_id") == cid]
    said = [(line["message"], line.get("state")) for line in trail]
    assert said[0] == ("callback created", None)
    for step in (("session started", None), ("callback state changed", "QUEUED"),
                 ("callback state changed", "ROUTING"), ("callback state changed", "PROCESSING"),
                 ("callback completed", "COMPLETED"), ("session ended", None)):
        assert step in said, (step, said)
    assert [m for m, _ in said[:3]] == ["callback created", "callback state changed", "session started"]
    session = trail[2]["session_id"]
    for i, line in enumerate(trail):
        assert line["service"] == "callback" and line["level"] == "INFO"
        # Created, then QUEUED as its flow is submitted, before the flow's session exists.
        assert line["session_id"] == (None if i < 2 else session), line
    assert next(line for line in trail if line["message"] == "callback completed")["reason"] == "AGENT_CONNECTED"

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
