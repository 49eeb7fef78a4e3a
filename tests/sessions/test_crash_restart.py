"""kill -9 the engine while hundreds of sessions have timers pending and events in flight;
after a restart every session must end exactly as an uninterrupted run of the flow ends.

Real processes, a real SQLite file, a real loopback HTTP sink: nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import ClientError, ClientSession, ClientTimeout, web

from engine.scxml import SessionHost, load_document
from tests.conftest import REPO
from tests.support.engine_process import CLIENT_KEY, EngineProcess
from tests.support.eventually import eventually

FLOWS = Path(__file__).parent / "flows"
PAIRS = 100
NOTES = 8
# Ticks per session: long enough that sessions still run when the first kill comes, even when the
# 200 starts are slow on a loaded machine (with 20, the first pairs could end before any note).
ROUNDS = 40
HEADERS = {"x-api-key": CLIENT_KEY}


async def reference_outcome() -> dict:
    """The same flow run in memory without any interruption: what every session must end with."""
    doc = load_document(str(FLOWS / "relay.scxml"))
    host = SessionHost()
    a = host.create_session(doc, data={"rounds": ROUNDS})
    a.start()
    b = host.create_session(doc, data={"partner": a.id, "rounds": ROUNDS})
    b.start()
    await eventually(lambda: not a.is_running and not b.is_running, timeout=6, expected="both sessions finished")
    outcomes = []
    for s in (a, b):
        data = s.variables
        outcomes.append({"final": s.final_state, "ticks": data["ticks"], "pings": data["pings"],
                         "errors": data["errors"], "notes": data["notes"]})
    assert outcomes[0] == outcomes[1]
    return outcomes[0]


class Sink:
    """Receives the Basic HTTP ``finished`` reports (effects leaving the engine)."""

    def __init__(self) -> None:
        self.reports: Counter[str] = Counter()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def handler(request: web.Request) -> web.Response:
            form = await request.post()
            self.reports[str(form["session"])] += 1
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/finished", handler)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/finished"

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()


async def start_pairs(client: ClientSession, url: str, sink: str, pairs: int = PAIRS) -> list[str]:
    sem = asyncio.Semaphore(16)

    async def start(params: dict) -> str:
        async with sem, client.post(url + "/scxml/session/start", json=params, headers=HEADERS) as r:
            assert r.status == 200, await r.text()
            return (await r.json())["sessionid"]

    # Periods differ per session so that ticks, pings and commits never fall quiet together.
    def period(i: int) -> str:
        return f"{25 + (i * 7) % 30}ms"

    firsts = await asyncio.gather(*(start({"src": "relay", "sink": sink, "period": period(i), "rounds": ROUNDS})
                                    for i in range(pairs)))
    seconds = await asyncio.gather(*(start({"src": "relay", "sink": sink, "partner": a, "period": period(i + 3),
                                            "rounds": ROUNDS})
                                     for i, a in enumerate(firsts)))
    return [*firsts, *seconds]


async def send_notes(client: ClientSession, url: str, sid: str, acked: dict[str, list[int]],
                     tried: dict[str, list[int]]) -> None:
    """Notes 0..NOTES-1 in order; a note counts as acknowledged only on a 200 answer."""
    for v in range(NOTES):
        tried[sid].append(v)
        try:
            async with client.post(f"{url}/scxml/session/{sid}/event/note", json={"v": v},
                                   headers=HEADERS) as r:
                if r.status != 200:
                    return
                acked[sid].append(v)
        except (TimeoutError, ClientError):
            return  # the engine died under us: stop, as a client that gave up would


async def wait_all_ended(client: ClientSession, url: str, log_path: Path, timeout: float = 90.0) -> None:
    async def running() -> list[dict]:
        async with client.get(url + "/scxml/sessions?status=running&limit=1000", headers=HEADERS) as r:
            return (await r.json())["sessions"]

    try:
        await eventually(running, lambda sessions: not sessions, timeout=timeout, interval=0.2,
                         expected="no session running", seen=lambda sessions: f"{len(sessions)} running")
    except AssertionError as failure:  # say where the sessions stopped, and what the engine logged
        stuck = []
        for found in (await running())[:4]:
            async with client.get(f"{url}/scxml/session/{found['sessionid']}/query", headers=HEADERS) as r:
                stuck.append(await r.json())
        async with client.get(f"{url}/health/ready") as r:
            ready = await r.text()
        noted = [line for line in log_path.read_text().splitlines()
                 if " restored " in line or "WARNING" in line or "ERROR" in line][-40:]
        raise AssertionError(f"{failure}\nstuck sessions: {stuck}\nreadiness: {ready}\nengine log: {noted}") from None


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_kill_9_loses_nothing_and_applies_nothing_twice(tmp_path: Path, database: str, request) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    expected = await reference_outcome()
    flows = tmp_path / "flows"
    shutil.copytree(FLOWS, flows)
    sink = Sink()
    await sink.start()
    db = {} if database == "sqlite" else {"database_url": request.getfixturevalue("postgres").new_database()}
    config = tmp_path / "config"  # the shipped config, plus the loopback sink allowed explicitly
    shutil.copytree(REPO / "config", config)
    (config / "notifications.json").write_text(json.dumps({"allowed_networks": ["127.0.0.0/8"]}))
    engine = EngineProcess(tmp_path / "data", flows, config_dir=str(config), **db)
    await engine.start()
    acked: dict[str, list[int]] = {}
    tried: dict[str, list[int]] = {}
    kills = []
    try:
        async with ClientSession(timeout=ClientTimeout(total=10)) as client:
            ids = await start_pairs(client, engine.url, sink.url)
            assert len(set(ids)) == 2 * PAIRS
            for sid in ids:
                acked[sid], tried[sid] = [], []
            notes = [asyncio.create_task(send_notes(client, engine.url, sid, acked, tried)) for sid in ids]
            # First kill: while timers, pings and notes are in flight (some notes acknowledged).
            # (On a loaded machine sessions may start finishing before 50 notes are in: kill then at the
            # latest, while most still run, or nothing would be in flight; but once a note is in: the
            # first sessions can end while the last ones are still being started, before any note.)
            for _ in range(500):
                notes_in = sum(len(v) for v in acked.values())
                if notes_in >= 50 or (sink.reports and notes_in):
                    break
                await asyncio.sleep(0.01)
            if not sink.reports:
                await asyncio.sleep(rng.uniform(0.0, 0.4))
            kills.append(len(sink.reports))
            engine.kill()
            await asyncio.gather(*notes)
            # Second kill: while the restarted engine is catching up on overdue timers.
            await engine.start()
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            kills.append(len(sink.reports))
            engine.kill()
            # Third kill: as sessions finish and their HTTP reports leave the engine.
            await engine.start()
            for _ in range(400):
                if sink.reports:
                    break
                await asyncio.sleep(0.005)
            kills.append(len(sink.reports))
            engine.kill()
            await engine.start()
            await wait_all_ended(client, engine.url, engine.log_path)
            # The kills must have caught work in flight, or this test proved little.
            restores = re.findall(r"restored (\d+) sessions, (\d+) events in flight, (\d+) pending effects",
                                  engine.log_path.read_text())  # the whole log: log() is its tail
            assert len(restores) == 4, engine.log()
            assert sum(int(r[1]) for r in restores) > 0, f"no event was in flight at any kill: {restores}"
            assert sum(int(r[0]) for r in restores[1:]) > 0

            for sid in ids:
                async with client.get(f"{engine.url}/scxml/session/{sid}/query", headers=HEADERS) as r:
                    assert r.status == 200
                    found = await r.json()
                where = f"session {sid} (seed {seed}, kills after {kills} reports)"
                assert found["status"] == "finished", where
                assert found["active_states"] == [expected["final"]], where
                data = found["datamodel"]
                assert data["ticks"] == expected["ticks"], where
                assert data["pings"] == expected["pings"], where  # none lost, none twice, in order
                assert data["errors"] == expected["errors"], where
                notes_seen = data["notes"]
                assert notes_seen == sorted(set(notes_seen)), f"{where}: notes repeated or reordered {notes_seen}"
                lost = sorted(set(acked[sid]) - set(notes_seen))
                assert not lost, f"{where}: acknowledged notes lost: {lost} (seen {notes_seen})"
                assert set(notes_seen) <= set(tried[sid]), where

            # Every session reported its end over HTTP at least once (effects survive a crash).
            await eventually(lambda: [sid for sid in ids if sink.reports[sid] == 0], lambda missing: not missing,
                             timeout=5, interval=0.05, expected=f"a report from every session (seed {seed})",
                             seen=lambda missing: f"{len(missing)} sessions never reported")
        assert sum(len(v) for v in acked.values()) > 0, "the test sent no note before the kill"
    finally:
        engine.stop()
        await sink.stop()
