"""The platform as its own process: a real engine (SQLite) reaching a real platform process over
its WebSocket (``platform_url``). The default flow's scenarios complete through it; a node killed
mid-dial replays its requests and the platform performs none twice; a platform killed and
restarted makes the flows hear ``platform.restarted`` and complete anyway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.callbacks.conftest import BASE, write_config
from tests.conftest import REPO
from tests.support.engine_process import ADMIN_KEY, CLIENT_KEY, EngineProcess
from tests.support.eventually import eventually
from tests.support.platform_process import PlatformProcess

CLIENT = {"x-api-key": CLIENT_KEY}
ADMIN = {"x-api-key": ADMIN_KEY}


@dataclass
class Pair:
    engine: EngineProcess
    platform: PlatformProcess
    http: ClientSession

    async def create(self, service: str, number: str) -> str:
        async with self.http.post(f"{self.engine.url}{BASE}/{service}", json={"_customer_number": number},
                                  headers=CLIENT) as r:
            body = await r.json()
            assert r.status == 200, body
            return body["_id"]

    async def record(self, cid: str) -> dict[str, Any]:
        async with self.http.get(f"{self.engine.url}{BASE}?_id={cid}", headers=CLIENT) as r:
            assert r.status == 200, await r.text()
            [found] = await r.json()
            return found

    async def events(self, service: str, cid: str) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.engine.url}{BASE}/{service}/{cid}/events", headers=CLIENT) as r:
            assert r.status == 200
            return await r.json()

    async def all_completed(self, cids: list[str], timeout: float = 20) -> dict[str, dict[str, Any]]:
        async def probe() -> dict[str, dict[str, Any]]:
            return {cid: await self.record(cid) for cid in cids}

        return await eventually(probe, lambda found: all(r["_callback_state"] == "COMPLETED" for r in found.values()),
                                timeout=timeout, interval=0.1, ignoring=(OSError,), expected="every callback COMPLETED",
                                seen=lambda found: {c: r["_callback_state"] for c, r in found.items()}
                                if isinstance(found, dict) else found)


def dials(evts: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(e["c_call_num_attempt"], e["c_call_result"]) for e in evts if e["event_id"] == "_cbe_on_dial_done"]


def exits(evts: list[dict[str, Any]]) -> int:
    return sum(1 for e in evts if e["event_id"] == "_cbe_on_service_exit")


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    config = write_config(tmp_path)
    platform = PlatformProcess(config, tmp_path / "platform.log")
    await platform.start()
    engine = EngineProcess(tmp_path / "data", REPO / "scxml", config_dir=str(config), platform_url=platform.url,
                           platform_key=platform.key,
                           log_level="INFO", flow_watch_interval="0")
    try:
        await engine.start()
        async with ClientSession() as http:
            yield Pair(engine, platform, http)
    finally:
        engine.stop()
        platform.stop()


async def test_the_scenarios_complete_through_the_platform_process(pair: Pair) -> None:
    answered = await pair.create("callback", "+15550900001")
    busy_first = await pair.create("callback", "+15550010000")
    never = await pair.create("callback", "+15550020000")
    callin = await pair.create("callin", "+15550900006")
    waiting = await pair.create("tiny", "+15550900007")  # Empty_VQ has no agent: it waits
    async with pair.http.get(f"{pair.engine.url}/genesys/1/service/{waiting}/check-queue-position",
                             headers=CLIENT) as r:
        assert r.status == 200  # answered from the engine's mirror of the platform's queues
    position = await eventually(lambda: _json(pair.http, f"{pair.engine.url}/genesys/1/service/{waiting}/"
                                                         "check-queue-position", CLIENT),
                                lambda p: p.get("_position") == 1, timeout=5, expected="position 1 in Empty_VQ")
    assert position["ewt"] == -1  # no agent staffed: unknown

    # call-in through the engine's admin route, which proxies to the platform process
    rec = await eventually(lambda: pair.record(callin), lambda r: r.get("_access_code"), timeout=10,
                           expected="an access code")
    async with pair.http.post(f"{pair.engine.url}/admin/simulator/call-in", headers=ADMIN,
                              json={"number": "+15550900006", "access_code": "000000"}) as r:
        assert r.status == 404
    async with pair.http.post(f"{pair.engine.url}/admin/simulator/call-in", headers=ADMIN,
                              json={"number": "+15550900006", "access_code": rec["_access_code"]}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["matched_session"] == rec["_ors_session_id"]

    done = await pair.all_completed([answered, busy_first, never, callin])
    assert done[answered]["_callback_reason"] == "AGENT_CONNECTED"
    assert done[busy_first]["_callback_reason"] == "AGENT_CONNECTED"
    assert done[never]["_callback_reason"] == "FAIL_CALL_TO_CUSTOMER"
    assert done[callin]["_callback_reason"] == "AGENT_CONNECTED"
    assert dials(await pair.events("callback", answered)) == [(1, 0)]
    assert dials(await pair.events("callback", busy_first)) == [(1, 1), (2, 0)]
    assert dials(await pair.events("callback", never)) == [(1, 2), (2, 3), (3, 4)]
    for service, cid in (("callback", answered), ("callback", busy_first), ("callback", never), ("callin", callin)):
        assert exits(await pair.events(service, cid)) == 1

    # the platform performed each dial once; the engine's admin view of it is the platform's
    stats = await pair.platform.stats()
    assert stats["dials"] == {"+15550900001": 1, "+15550010000": 2, "+15550020000": 3}
    simulator = await _json(pair.http, f"{pair.engine.url}/admin/simulator", ADMIN)
    assert simulator["state"]["queues"]["Empty_VQ"]["waiting"] == 1
    assert simulator["state"]["queues"]["Callback_VQ"]["interactions"] == []
    health = await _json(pair.http, f"{pair.engine.url}/health/ready", {})
    assert health["checks"]["platform"]["ok"] is True and pair.platform.url in health["checks"]["platform"]["detail"]

    # a settings change through the engine is the platform's: checked, saved and applied there
    config = simulator["config"]
    async with pair.http.put(f"{pair.engine.url}/admin/simulator", headers=ADMIN,
                             json={**config, "time_scale": 50}) as r:
        assert r.status == 400 and "time_scale" in (await r.json())["message"]
    staffed = {**config, "queues": {**config["queues"], "Empty_VQ": {**config["queues"]["Empty_VQ"], "agents": 1}}}
    async with pair.http.put(f"{pair.engine.url}/admin/simulator", headers=ADMIN, json=staffed) as r:
        assert r.status == 200, await r.text()
    assert "agents = 1" in (pair.platform.config_dir / "simulator.toml").read_text()
    await pair.all_completed([waiting])  # Empty_VQ got an agent: the waiting callback is served


async def test_an_engine_killed_mid_dial_replays_its_requests_and_none_is_performed_twice(pair: Pair) -> None:
    numbers = [f"+155500100{i:02d}" for i in range(8)]  # busy, then answer: a retry dial 60 s later
    cids = [await pair.create("callback", n) for n in numbers]

    async def first_busy() -> int:
        found = [dials(await pair.events("callback", cid)) for cid in cids]
        return sum(1 for seen in found if seen == [(1, 1)])

    await eventually(first_busy, lambda n: n >= 1, timeout=10, interval=0.01,
                     expected="a first dial answered busy (its retry due 60 simulated s later)")
    # The platform stops answering: the requests of the retries the engine makes now (release the
    # agent, find one again, dial) stay unacked and their outbox rows stay; then the engine dies.
    # The platform reads them once resumed; the restarted engine sends them again from its outbox.
    pair.platform.pause()
    try:
        await asyncio.sleep(0.8)  # > the retry timeout (60 simulated s = 0.3 s)
        pair.engine.kill()
    finally:
        pair.platform.resume()
    await pair.engine.start()
    done = await pair.all_completed(cids)
    stats = await pair.platform.stats()
    assert stats["dials"] == {n: 2 for n in numbers}  # performed once each, replay or not
    assert sum(node["duplicates"] for node in stats["nodes"].values()) >= 1  # a replay did arrive
    for cid in cids:
        assert done[cid]["_callback_reason"] == "AGENT_CONNECTED"
        evts = await pair.events("callback", cid)
        assert dials(evts) == [(1, 1), (2, 0)]  # each dial.result taken in once
        assert exits(evts) == 1


async def test_a_platform_killed_and_restarted_makes_the_flows_queue_again(pair: Pair) -> None:
    cids = [await pair.create("callback", f"+155509002{i:02d}") for i in range(6)]  # 2 agents: a queue forms
    await eventually(pair.platform.stats, lambda s: s["by_request"].get("route", 0) >= 1, timeout=10,
                     interval=0.02, expected="a first call routed")
    before = (await pair.platform.stats())["incarnation"]
    pair.platform.kill()
    await pair.platform.start()
    assert (await pair.platform.stats())["incarnation"] != before
    done = await pair.all_completed(cids)
    requeued = 0
    for cid in cids:
        assert done[cid]["_callback_reason"] == "AGENT_CONNECTED"
        evts = await pair.events("callback", cid)
        assert exits(evts) == 1
        requeued += sum(1 for e in evts if e["event_id"] == "_cbe_on_virtual_ixn_create") - 1
    assert requeued >= 1  # platform.restarted sent waiting flows back to create_vixn
    stats = await pair.platform.stats()
    assert stats["by_request"].get("vixn.create", 0) >= 1  # the new platform got their queues back
    health = await _json(pair.http, f"{pair.engine.url}/health/ready", {})
    assert health["checks"]["platform"]["ok"] is True


async def _json(http: ClientSession, url: str, headers: dict[str, str]) -> Any:
    async with http.get(url, headers=headers) as r:
        return await r.json()
