"""kill -9 while callbacks are scheduled and queued: after a restart none is lost, none runs twice."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import ClientSession

from tests.callbacks.conftest import BASE, write_config
from tests.conftest import REPO
from tests.support.engine_process import CLIENT_KEY, EngineProcess
from tests.support.eventually import eventually

HEADERS = {"x-api-key": CLIENT_KEY}
IMMEDIATE, SCHEDULED = 16, 16


async def clock(client: ClientSession, url: str) -> float:
    async with client.get(url + "/health") as r:
        # ISO 8601 UTC like every API time (issue 12); as epoch seconds here
        return datetime.fromisoformat((await r.json())["clock"].replace("Z", "+00:00")).timestamp()


async def test_restart_loses_no_callback_and_runs_none_twice(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (config / "services" / "callback.json").write_text(json.dumps({"_service": "callback"}))
    engine = EngineProcess(tmp_path / "data", REPO / "scxml", config_dir=str(config))
    await engine.start()
    try:
        async with ClientSession() as client:
            ids = []
            for i in range(IMMEDIATE):
                async with client.post(f"{engine.url}{BASE}/callback", json={"_customer_number": f"+1555090{i:04d}"},
                                       headers=HEADERS) as r:
                    ids.append((await r.json())["_id"])
            now = await clock(client, engine.url)
            for i in range(SCHEDULED):
                at = datetime.fromtimestamp(now + 600 + 30 * i, UTC).isoformat().replace("+00:00", "Z")
                async with client.post(f"{engine.url}{BASE}/callback",
                                       json={"_customer_number": f"+1555091{i:04d}", "_desired_time": at},
                                       headers=HEADERS) as r:
                    assert r.status == 200, await r.text()
                    ids.append((await r.json())["_id"])
            await asyncio.sleep(0.3)  # let callbacks get under way (and some SCHEDULED) before the kill
            states_before = Counter()
            for cid in ids:
                async with client.get(f"{engine.url}{BASE}?_id={cid}", headers=HEADERS) as r:
                    states_before[(await r.json())[0]["_callback_state"]] += 1
            assert states_before["SCHEDULED"] >= SCHEDULED // 2 and states_before["COMPLETED"] < len(ids)
            engine.kill()
            await engine.start()

            async def all_records() -> list[dict]:
                records = []
                for cid in ids:
                    async with client.get(f"{engine.url}{BASE}?_id={cid}", headers=HEADERS) as r:
                        found = await r.json()
                        assert len(found) == 1, f"callback {cid} lost"
                        records.append(found[0])
                return records

            records = await eventually(all_records, lambda got: all(r["_callback_state"] == "COMPLETED" for r in got),
                                       timeout=60, interval=0.2, expected="every callback COMPLETED",
                                       seen=lambda got: Counter(r["_callback_state"] for r in got))
            for rec in records:
                assert rec["_callback_reason"] == "AGENT_CONNECTED", rec
                async with client.get(f"{engine.url}{BASE}/callback/{rec['_id']}/events", headers=HEADERS) as r:
                    counts = Counter(e["event_id"] for e in await r.json())
                # one session per callback, submitted once, ended once
                assert counts["_cbe_on_service_create"] == 1, (rec["_id"], counts)
                assert counts["_cbe_on_callback_submitted"] == 1, (rec["_id"], counts)
                assert counts["_cbe_on_service_exit"] == 1, (rec["_id"], counts)
        assert re.search(r"callback service: \d+ open callbacks restored", engine.log_path.read_text())
    finally:
        engine.stop()


@pytest.mark.parametrize("service_removed", [False, True], ids=["service-kept", "service-removed"])
async def test_a_waiting_callback_whose_session_is_gone_is_resubmitted(tmp_path: Path, service_removed: bool) -> None:
    """A QUEUED callback whose session cannot be restored (its row gone, unreadable...) is handed
    to a new session of its flow (``_cbe_on_callback_resubmitted``); one past QUEUED (an agent may
    have it) is failed as before, since running its flow again could call the customer twice."""
    import sqlite3

    from engine.runtime import Runtime
    from engine.settings import Settings

    config = write_config(tmp_path)
    (config / "services" / "waiting.json").write_text(json.dumps({"_service": "callback",
                                                                  "_urs_virtual_queue": "Empty_VQ"}))

    def settings() -> Settings:
        return Settings.load(config_dir=config, env={}, data_dir=tmp_path / "data", flows_dir=REPO / "scxml",
                             flow_watch_interval=0)

    runtime = await Runtime.build(settings())
    await runtime.start()
    service = runtime.callbacks
    waiting = await service.create("waiting", {"_customer_number": "+15550930001"})
    routing = await service.create("waiting", {"_customer_number": "+15550930002"})
    await eventually(lambda: all(r["_callback_state"] == "QUEUED" for r in (waiting, routing)), timeout=5,
                     expected="both QUEUED")
    routing_session = runtime.manager.sessions[routing["_ors_session_id"]]
    service.flow_update(routing_session, "ROUTING", None, {})  # as the flow does once the customer answers
    gone = {waiting["_id"]: waiting["_ors_session_id"], routing["_id"]: routing["_ors_session_id"]}
    await runtime.manager.commit()
    await runtime.close()
    with sqlite3.connect(tmp_path / "data" / "engine.db") as db:
        db.executemany("DELETE FROM sessions WHERE id = ?", [(sid,) for sid in gone.values()])
    if service_removed:  # then it cannot be resubmitted; the engine still starts (found by review)
        (config / "services" / "waiting.json").unlink()

    runtime = await Runtime.build(settings())
    await runtime.start()
    try:
        service = runtime.callbacks
        again = await service.get(waiting["_id"])
        if service_removed:
            assert (again["_callback_state"], again["_callback_reason"]) == ("COMPLETED", "FAIL_ERROR"), again
            assert (await service.get(routing["_id"]))["_callback_reason"] == "FAIL_ERROR"
            return
        assert again["_callback_state"] == "QUEUED" and again["_ors_session_id"] not in (None, gone[waiting["_id"]])
        assert runtime.manager.sessions[again["_ors_session_id"]].is_running
        names = [e["event_id"] for e in await service.events_of("waiting", waiting["_id"])]
        assert names.count("_cbe_on_callback_resubmitted") == 1 and names.count("_cbe_on_service_create") == 2, names
        failed = await service.get(routing["_id"])
        assert (failed["_callback_state"], failed["_callback_reason"]) == ("COMPLETED", "FAIL_ERROR")
        await runtime.manager.commit()
    finally:
        await runtime.close()
