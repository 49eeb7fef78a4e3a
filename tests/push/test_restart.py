"""kill -9 with pushes pending (FCM down): after the restart every push is delivered."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import ClientSession

from tests.callbacks.conftest import BASE, LOOPBACK_ALLOWED, write_config
from tests.conftest import REPO
from tests.push.conftest import credentials_body
from tests.push.test_rules import SIMULATOR, device
from tests.support.engine_process import ADMIN_KEY, CLIENT_KEY, EngineProcess
from tests.support.eventually import eventually, stays_false

CALLBACKS = 6


def attempt_pushes(google, n: int) -> list[str]:
    return [e for e in google.events(device(n)) if "ATTEMPT" in e]


async def failed_attempts(client: ClientSession, url: str, cid: str) -> list[str]:
    async with client.get(f"{url}{BASE}/dialling/{cid}/events", headers={"x-api-key": CLIENT_KEY}) as r:
        dials = [e for e in await r.json() if e["event_id"] == "_cbe_on_dial_done" and e["c_call_result"]]
    return [("CALLBACK_FINAL_ATTEMPT_FAILED" if d["c_call_num_attempt"] >= 3 else "CALLBACK_ATTEMPT_FAILED")
            for d in dials]


async def completed(client: ClientSession, url: str, cid: str) -> bool:
    async with client.get(f"{url}{BASE}?_id={cid}", headers={"x-api-key": CLIENT_KEY}) as r:
        [found] = await r.json()
    return found["_callback_state"] == "COMPLETED"


async def test_pushes_pending_at_a_crash_are_delivered_after_restart(tmp_path: Path, google, key_pair) -> None:
    config = write_config(tmp_path)
    (config / "simulator.toml").write_text(SIMULATOR)
    (config / "services" / "dialling.json").write_text(json.dumps({"_service": "callback", "_dial_retry_timeout": 30}))
    # The outage below outlasts the default retry budget at this time scale; this test is about the crash.
    (config / "notifications.json").write_text(json.dumps({**LOOPBACK_ALLOWED, "max_attempts": 10_000}))
    engine = EngineProcess(tmp_path / "data", REPO / "scxml", config_dir=str(config),
                           fcm_base_url=google.base, fcm_token_uri=google.token_uri)
    await engine.start()
    google.fail_all = 503
    try:
        async with ClientSession() as client:
            r = await client.put(engine.url + "/admin/push/credentials", json=credentials_body(key_pair[0]),
                                 headers={"x-api-key": ADMIN_KEY})
            assert r.status == 200
            ids = []
            for n in range(CALLBACKS):  # never answers: ATTEMPT_FAILED per failed dial, then FINAL
                r = await client.post(f"{engine.url}{BASE}/dialling", headers={"x-api-key": CLIENT_KEY}, json={
                    "_customer_number": f"+155500200{n:02d}", "_device_os": "fcm",
                    "_device_notification_id": device(n)})
                assert r.status == 200
                ids.append((await r.json())["_id"])
            # callbacks run and their pushes pile up: FCM is down, so all stay pending
            await stays_false(google.events, 1.5, what="a push while FCM is down")
            engine.kill()
            google.fail_all = None
            await engine.start()
            # Each callback gets one push per failed attempt its flow recorded, the last one FINAL.
            # (A dial in flight at the crash has no result: it counts as used, but nothing is pushed.)
            # Compare only once every callback has ended: before that, a match can be momentary.
            async def progress() -> tuple[list[bool], dict[int, list[str]], dict[int, list[str]]]:
                ended = [await completed(client, engine.url, cid) for cid in ids]
                expected = {n: await failed_attempts(client, engine.url, ids[n]) for n in range(CALLBACKS)}
                return ended, expected, {n: attempt_pushes(google, n) for n in range(CALLBACKS)}

            _, expected, _ = await eventually(
                progress, lambda got: all(got[0]) and got[1] == got[2], timeout=60, interval=0.2,
                expected="every callback ended with one push per failed attempt",
                seen=lambda got: f"ended {got[0]}, failed attempts {got[1]}, pushes {got[2]}")
            assert all(e and e[-1] == "CALLBACK_FINAL_ATTEMPT_FAILED" for e in expected.values())
        assert "notifications:" in engine.log_path.read_text()  # the restart resumed stored pushes
    finally:
        engine.stop()
