"""A callback's history of state changes is written in the same unit of work as the record it
describes, so a crash (kill -9) keeps both or neither: no gap, no state change told twice."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from itertools import pairwise
from pathlib import Path

from aiohttp import ClientSession

from engine import persistence
from engine.api.appkeys import RUNTIME
from engine.callbacks import history
from engine.callbacks import rows as callback_rows
from engine.callbacks.records import format_time
from engine.storage import UnitOfWork
from tests.callbacks.conftest import BASE, REPO, create, make_client, wait_state, write_config
from tests.support.engine_process import ADMIN_KEY, CLIENT_KEY, EngineProcess
from tests.support.eventually import eventually


async def test_each_state_row_is_in_the_batch_that_writes_the_record(aiohttp_client, tmp_path) -> None:
    client = await make_client(aiohttp_client, tmp_path)
    batches: list[UnitOfWork] = []
    client.app[RUNTIME].manager.on_commit.append(lambda batch, _seconds: batches.append(batch))
    ids = [await create(client, "callback", _customer_number=f"+1555090100{i}") for i in range(3)]
    for cid in ids:
        await wait_state(client, cid, "COMPLETED")
    await client.app[RUNTIME].manager.commit()
    changes = 0
    for batch in batches:
        records = {r["id"]: r["state"] for r in batch.upserts.get(callback_rows.CALLBACKS, [])}
        last_change: dict[str, str] = {}
        for row in batch.upserts.get(history.CALLBACK_HISTORY, []):
            if row["kind"] == history.STATE:
                last_change[row["callback_id"]] = json.loads(row["data"])["to"]
        for cid, state in last_change.items():
            changes += 1
            # the record row of the same unit holds the state the last change of that unit led to
            assert records.get(cid) == state, (cid, state, records)
    assert changes >= 3 * 2  # each callback changed state in at least two batches


def chained(timeline: list[dict]) -> bool:
    """Every change starts where the one before ended: none lost, none told twice."""
    return all(b["from"] == a["state"] for a, b in pairwise(timeline))


def stored_history(data: Path, cid: str) -> str:
    """What the database holds of a callback (its record's state, its history rows by id) and the
    engine's log lines naming it: a failure shows them whole (pytest shortens long values)."""
    db = sqlite3.connect(str(data / "engine.db"))
    try:
        state = db.execute("SELECT state FROM callbacks WHERE id = ?", (cid,)).fetchall()
        rows = db.execute("SELECT id, at, data FROM callback_history WHERE callback_id = ? ORDER BY id",
                          (cid,)).fetchall()
    finally:
        db.close()
    log = [line for line in (data / "engine.log").read_text(errors="replace").splitlines() if cid in line]
    return json.dumps({"state": state, "history": rows, "log": log[-40:]})


async def test_kill_9_leaves_no_gap_in_any_timeline(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    engine = EngineProcess(tmp_path / "data", REPO / "scxml", config_dir=str(config))
    await engine.start()
    admin, client_key = {"x-api-key": ADMIN_KEY}, {"x-api-key": CLIENT_KEY}
    try:
        async with ClientSession() as client:
            ids = []
            for i in range(12):
                async with client.post(f"{engine.url}{BASE}/callback", json={"_customer_number": f"+1555090200{i:02d}"},
                                       headers=client_key) as r:
                    assert r.status == 200, await r.text()
                    ids.append((await r.json())["_id"])
            await asyncio.sleep(0.4)  # two agents: some callbacks are through, some dialling, some waiting
            states = []
            for cid in ids:
                async with client.get(f"{engine.url}{BASE}?_id={cid}", headers=client_key) as r:
                    states.append((await r.json())[0]["_callback_state"])
            assert states.count("COMPLETED") < len(ids), states  # killed with callbacks under way
            engine.kill()
            await engine.start()

            async def timelines() -> dict[str, tuple[str, list[dict]]]:
                found = {}
                for cid in ids:
                    async with client.get(f"{engine.url}/admin/callbacks/{cid}/history", headers=admin) as r:
                        body = await r.json()
                        found[cid] = (body["record"]["_callback_state"], body["timeline"])
                return found

            found = await eventually(timelines, lambda got: all(s == "COMPLETED" for s, _ in got.values()),
                                     timeout=60, interval=0.2, expected="every callback COMPLETED after the restart",
                                     seen=lambda got: {c: s for c, (s, _) in got.items()})
        for cid, (_state, timeline) in found.items():
            def whole(cid: str = cid, timeline: list[dict] = timeline) -> str:  # read only on a failure
                return f"{cid}: {json.dumps(timeline)}; stored: {stored_history(tmp_path / 'data', cid)}"

            assert timeline[0]["from"] == "SCHEDULED" and timeline[0]["source"] == "api create", whole()
            assert timeline[-1]["state"] == "COMPLETED", whole()
            assert chained(timeline), whole()
    finally:
        engine.stop()


async def test_the_retention_purge_takes_the_history_with_its_callback(aiohttp_client, tmp_path) -> None:
    client = await make_client(aiohttp_client, tmp_path)
    runtime = client.app[RUNTIME]
    done = await create(client, "callback", _customer_number="+15550900301")
    await wait_state(client, done, "COMPLETED")
    later = format_time(runtime.clock.now() + 7200)
    waiting = await create(client, "callback", _customer_number="+15550900302", _desired_time=later)
    await runtime.manager.commit()
    assert await history.stored(runtime.store, done) and await history.stored(runtime.store, waiting)
    await persistence.purge(runtime.store, cutoff=10**12)
    assert await history.stored(runtime.store, done) == []
    assert len(await history.stored(runtime.store, waiting)) == 1  # open: kept
