"""kill -9 the engine while pairs of ecmascript sessions have timers pending and events in flight
(tests/sessions/flows_ecmascript/relay.scxml, the python crash test's flow in ECMAScript, with
values JSON alone would lose); after restarts every session ends as an uninterrupted run does.

Real processes, a real SQLite file, a real loopback HTTP sink: nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout

from engine.scxml import SessionHost, load_document
from tests.conftest import REPO
from tests.sessions.test_crash_restart import HEADERS, NOTES, Sink, send_notes, start_pairs, wait_all_ended
from tests.support.engine_process import EngineProcess
from tests.support.eventually import eventually

FLOWS = Path(__file__).parent / "flows_ecmascript"
PAIRS = 40
ROUNDS = 40


async def reference_outcome() -> dict:
    doc = load_document(str(FLOWS / "relay.scxml"))
    assert doc.datamodel.name == "ecmascript"
    host = SessionHost()
    a = host.create_session(doc, data={"rounds": ROUNDS})
    a.start()
    b = host.create_session(doc, data={"partner": a.id, "rounds": ROUNDS})
    b.start()
    await eventually(lambda: not a.is_running and not b.is_running, timeout=10, expected="both sessions finished")
    data = a.variables
    assert data["checks"] == [] and b.variables["checks"] == []
    return {"final": a.final_state, "ticks": data["ticks"], "pings": data["pings"], "errors": data["errors"]}


async def test_kill_9_keeps_ecmascript_sessions_whole(tmp_path: Path) -> None:
    expected = await reference_outcome()
    flows = tmp_path / "flows"
    shutil.copytree(FLOWS, flows)
    sink = Sink()
    await sink.start()
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    (config / "notifications.json").write_text(json.dumps({"allowed_networks": ["127.0.0.0/8"]}))
    engine = EngineProcess(tmp_path / "data", flows, config_dir=str(config))
    await engine.start()
    acked: dict[str, list[int]] = {}
    tried: dict[str, list[int]] = {}
    try:
        async with ClientSession(timeout=ClientTimeout(total=10)) as client:
            ids = await start_pairs(client, engine.url, sink.url, pairs=PAIRS)
            for sid in ids:
                acked[sid], tried[sid] = [], []
            notes = [asyncio.create_task(send_notes(client, engine.url, sid, acked, tried)) for sid in ids]
            for _ in range(500):
                if sum(len(v) for v in acked.values()) >= 30 or sink.reports:
                    break
                await asyncio.sleep(0.01)
            engine.kill()
            await asyncio.gather(*notes)
            await engine.start()
            await asyncio.sleep(0.2)
            engine.kill()
            await engine.start()
            await wait_all_ended(client, engine.url, engine.log_path)
            restores = re.findall(r"restored (\d+) sessions", engine.log_path.read_text())
            assert sum(int(n) for n in restores) > 0, f"no session was running at a kill: {restores}"
            for sid in ids:
                async with client.get(f"{engine.url}/scxml/session/{sid}/query", headers=HEADERS) as r:
                    found = await r.json()
                data = found["datamodel"]
                assert found["status"] == "finished" and found["active_states"] == [expected["final"]], sid
                assert data["checks"] == [], f"{sid}: values lost across a restart: {data['checks']}"
                assert (data["ticks"], data["pings"], data["errors"]) == (
                    expected["ticks"], expected["pings"], expected["errors"]), sid
                seen = data["notes"]
                assert seen == sorted(set(seen)) and set(acked[sid]) <= set(seen) <= set(range(NOTES)), sid
        assert sum(len(v) for v in acked.values()) > 0, "the test sent no note before the kill"
    finally:
        engine.stop()
        await sink.stop()
