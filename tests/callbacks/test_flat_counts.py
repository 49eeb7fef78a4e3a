"""The counts the limits and push read (record_index.py) always equal a recount of the records.

The indexes replace scans on every create and queue change, so a count that drifts would refuse
or admit callbacks wrongly for ever after. Hypothesis drives them two ways: the indexes alone
against a reference under random record changes, and a real engine under random creates,
cancels, reschedules, key updates and flow progress, recounted after every step and after a
restart on the same database.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api.appkeys import RUNTIME
from engine.app import create_app
from engine.callbacks.record_index import RecordIndex, TimeIndex
from engine.callbacks.records import parse_time
from engine.push.service import _watched_in
from engine.settings import Settings
from tests.callbacks.conftest import BASE, CLIENT, write_config
from tests.conftest import REPO
from tests.support.engine_process import free_port

STATES = ["SCHEDULED", "QUEUED", "ROUTING", "PROCESSING", "PAUSED", "COMPLETED"]

# -- the indexes alone -------------------------------------------------------------------------

change = st.tuples(st.integers(0, 7), st.sampled_from(STATES), st.sampled_from(["a", "b"]),
                   st.integers(0, 20), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(change, max_size=60))
def test_indexes_equal_a_recount_under_any_changes(changes: list[tuple[int, str, str, int, bool]]) -> None:
    by_service = RecordIndex(lambda r: r["service"] if r["state"] == "QUEUED" else None)
    by_time = TimeIndex(lambda r: (r["service"], float(r["at"])) if r["state"] == "SCHEDULED" else None)
    records: dict[str, dict[str, Any]] = {}
    for n, state, service, at, drop in changes:
        cid = f"c{n}"
        if drop and cid in records:  # the record leaves memory (a completed one, normally)
            del records[cid]
            by_service.forget(cid)
            by_time.forget(cid)
            continue
        records[cid] = record = {"_id": cid, "state": state, "service": service, "at": at}
        by_service.track(record)
        by_time.track(record)
        by_service.track(record)  # telling twice changes nothing
        queued = Counter(r["service"] for r in records.values() if r["state"] == "QUEUED")
        assert by_service.counts() == dict(queued)
        for svc in ("a", "b"):
            assert sorted(by_service.ids(svc)) == sorted(c for c, r in records.items()
                                                         if r["state"] == "QUEUED" and r["service"] == svc)
            for lo, hi in ((0, 21), (3, 9), (5, 6), (7, 7)):
                expected = [c for c, r in records.items()
                            if r["state"] == "SCHEDULED" and r["service"] == svc and lo <= r["at"] < hi]
                assert by_time.count_between(svc, lo, hi) == len(expected)
                for c in records:
                    assert by_time.count_between(svc, lo, hi, exclude=c) == len(expected) - (c in expected)


# -- a real engine ---------------------------------------------------------------------------

PUSHY = {"_service": "callback", "_urs_virtual_queue": "Empty_VQ", "_max_queued_callbacks_per_service": 4,
         "_request_time_bucket": 5, "_max_request_by_time_bucket": 2}
SERVICES = ("callback", "tiny", "nowait", "pushy")

operation = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(SERVICES), st.sampled_from([None, 150, 200, 400, 7200]),
              st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("reschedule"), st.integers(0, 30), st.sampled_from([150, 300, 7200])),
    st.tuples(st.just("push"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("wait"), st.sampled_from([0.05, 0.3])),
)


def at(client: TestClient, seconds_ahead: float) -> str:
    now = client.app[RUNTIME].manager.clock.now()
    return datetime.fromtimestamp(now + seconds_ahead, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def assert_counts_match(client: TestClient) -> None:
    runtime = client.app[RUNTIME]
    service, records = runtime.callbacks, runtime.callbacks.records.values()
    waiting = Counter(r["_service_name"] for r in records if r["_callback_state"] == "QUEUED")
    assert service.waiting.counts() == dict(waiting)
    scheduled = sorted((r["_id"], (r["_service_name"], parse_time(r["_desired_time"], "")))
                       for r in records if r["_callback_state"] == "SCHEDULED")
    assert sorted(service.scheduled.places()) == scheduled
    watched = Counter(q for q in map(_watched_in, records) if q is not None)
    assert runtime.push.watched.counts() == dict(watched)


async def start(root: Path) -> TestClient:
    port = free_port()
    config = root / "config"
    if not config.exists():
        write_config(root)
        (config / "services" / "pushy.json").write_text(json.dumps(PUSHY))
    app = create_app(Settings.load(config_dir=config, env={}, data_dir=root / "data", flows_dir=REPO / "scxml",
                                   admin_key="admin-key", client_key="client-key", flow_watch_interval=0,
                                   port=port))
    client = TestClient(TestServer(app, port=port))
    await client.start_server()
    return client


async def run(operations: list[tuple[Any, ...]], root: Path) -> None:
    client = await start(root)
    ids: list[tuple[str, str]] = []
    try:
        for op in operations:
            kind = op[0]
            if kind == "create":
                _, svc, ahead, push = op
                body: dict[str, Any] = {"_customer_number": f"+1555080{len(ids):04d}"}
                if ahead is not None:
                    body["_desired_time"] = at(client, ahead)
                if push:
                    body.update(_device_os="fcm", _device_notification_id=f"fcm-registration-token-{len(ids):04d}")
                r = await client.post(f"{BASE}/{svc}", json=body, headers=CLIENT)
                assert r.status in (200, 503), await r.text()
                if r.status == 200:
                    ids.append((svc, (await r.json())["_id"]))
            elif kind == "wait":
                await asyncio.sleep(op[1])
            elif ids:
                svc, cid = ids[op[1] % len(ids)]
                if kind == "cancel":
                    r = await client.delete(f"{BASE}/{svc}/{cid}", headers=CLIENT)
                elif kind == "reschedule":
                    r = await client.put(f"{BASE}/{svc}/{cid}", json={"_new_desired_time": at(client, op[2])},
                                         headers=CLIENT)
                else:  # push fields given or taken away
                    keys = ({"_device_os": "fcm", "_device_notification_id": f"fcm-registration-token-{cid}"} if op[2]
                            else {"_device_notification_id": ""})
                    r = await client.put(f"{BASE}/{svc}/{cid}", json=keys, headers=CLIENT)
                assert r.status in (200, 400, 503), await r.text()
            assert_counts_match(client)
        await client.app[RUNTIME].manager.commit()
        before = {cid: r["_callback_state"] for cid, r in client.app[RUNTIME].callbacks.records.items()
                  if r["_callback_state"] == "SCHEDULED"}
    finally:
        await client.close()
    client = await start(root)  # a restart on the same database: the counts are rebuilt from it
    try:
        restored = client.app[RUNTIME].callbacks.records
        assert set(before) <= set(restored)
        assert_counts_match(client)
    finally:
        await client.close()


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(operation, min_size=1, max_size=25))
def test_counts_equal_a_recount_through_every_transition_and_a_restart(operations: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(run(operations, Path(root)))


async def test_limits_hold_after_a_kill_and_restart(tmp_path: Path) -> None:
    """The queue-size and capacity limits count what was there before a kill -9."""
    from aiohttp import ClientSession

    from tests.support.engine_process import CLIENT_KEY, EngineProcess

    config = write_config(tmp_path)
    engine = EngineProcess(tmp_path / "data", REPO / "scxml", config_dir=str(config))
    headers = {"x-api-key": CLIENT_KEY}
    await engine.start()
    try:
        async with ClientSession() as client:
            async with client.get(engine.url + "/health") as r:
                now = datetime.fromisoformat((await r.json())["clock"].replace("Z", "+00:00")).timestamp()
            when = datetime.fromtimestamp(now + 10 * 3600, UTC).isoformat().replace("+00:00", "Z")
            bodies = [{"_customer_number": "+15550800001"},  # tiny: 1 queued at most (Empty_VQ: stays)
                      {"_customer_number": "+15550800002", "_desired_time": when},  # 2 per bucket
                      {"_customer_number": "+15550800003", "_desired_time": when}]
            for body in bodies:
                async with client.post(f"{engine.url}{BASE}/tiny", json=body, headers=headers) as r:
                    assert r.status == 200, await r.text()
            engine.kill()
            await engine.start()
            for body in bodies:
                async with client.post(f"{engine.url}{BASE}/tiny", json=body, headers=headers) as r:
                    assert r.status == 503, await r.text()
    finally:
        engine.stop()
