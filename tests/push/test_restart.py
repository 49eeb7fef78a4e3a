"""kill -9 with pushes pending (FCM down): after the restart every push is delivered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from engine.callbacks import rows as callback_rows
from engine.runtime import Runtime
from engine.settings import Settings
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
            # FCM is back, but not for the killed engine: a push it sent just before it died can
            # still wait unread in a socket of this process, and was taken as delivered once the
            # outage ended, then sent again by the restarted engine, which never learned of it (at
            # least once: one push more than failed dials, seen under load). Revoking the dead
            # engine's access tokens answers such a request 401; the new engine mints its own.
            google.tokens.clear()
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
            # Every callback used its attempts: none lost its last dial's events (or its session) in the restart.
            assert all(e and e[-1] == "CALLBACK_FINAL_ATTEMPT_FAILED" for e in expected.values()), expected
        assert "notifications:" in engine.log_path.read_text()  # the restart resumed stored pushes
    finally:
        engine.stop()


# A flow that fails one dial after a delay, as the callback flow does between retries: restored
# with that delay overdue, it reports the failed dial on its first turn after the restart.
FAILS_A_DIAL = """<scxml xmlns="http://www.w3.org/2005/07/scxml" xmlns:cb="urn:callback-engine:callback"
       version="1.0" datamodel="ecmascript" initial="retry_wait">
  <datamodel>
    <data id="c_call_num_attempt" expr="1"/><data id="c_call_result" expr="0"/>
    <data id="_max_dial_attempts" expr="3"/>
  </datamodel>
  <state id="retry_wait">
    <onentry><send event="cb.retry" delay="200ms"/></onentry>
    <transition event="cb.retry" target="dial_done">
      <assign location="c_call_num_attempt" expr="2"/><assign location="c_call_result" expr="3"/>
    </transition>
  </state>
  <state id="dial_done"><onentry><cb:notify event="_cbe_on_dial_done"/></onentry></state>
</scxml>"""


async def test_a_session_restored_reports_to_its_callback_even_when_the_callbacks_load_slowly(
        tmp_path: Path, monkeypatch, caplog) -> None:
    """The restart's order, forced: the callbacks' load takes many loop turns (as on a loaded
    machine), during which a restored session's overdue retry is due. Its failed dial must still
    be recorded and pushed: a session let run before its callback was loaded fired
    ``_cbe_on_dial_done`` to no callback (no event row, no push; "runs no callback" logged)."""
    config = write_config(tmp_path)
    (config / "simulator.toml").write_text("time_scale = 1.0\n")
    (config / "services" / "fails.json").write_text(json.dumps({"_service": "fails_a_dial"}))
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "fails_a_dial.scxml").write_text(FAILS_A_DIAL)
    settings = Settings.load(config_dir=config, env={}, data_dir=tmp_path / "data", flows_dir=flows,
                             flow_watch_interval=0)
    runtime = await Runtime.build(settings)
    await runtime.start()
    record = await runtime.callbacks.create("fails", {"_customer_number": "+15550030001", "_device_os": "fcm",
                                                      "_device_notification_id": device(0)})
    cid = record["_id"]
    await runtime.close()  # stored waiting for its retry...
    await asyncio.sleep(0.4)  # ...which is overdue when it starts again

    load_open = callback_rows.load_open

    async def slow_load_open(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        for _turn in range(50):  # loop turns, not time: an overdue timer fires within a few
            await asyncio.sleep(0)
        return await load_open(*args, **kwargs)

    monkeypatch.setattr(callback_rows, "load_open", slow_load_open)
    runtime = await Runtime.build(settings)
    await runtime.start()
    try:
        dials = await eventually(
            lambda: runtime.callbacks.event_rows(cid),
            lambda rows: any(r["name"] == "_cbe_on_dial_done" for r in rows), timeout=5,
            expected="the failed dial recorded", seen=lambda rows: [r["name"] for r in rows])
        assert [r["data"]["c_call_num_attempt"] for r in dials if r["name"] == "_cbe_on_dial_done"] == [2]
        assert runtime.push.pushed == [(cid, "CALLBACK_ATTEMPT_FAILED")]
        assert "runs no callback" not in caplog.text
    finally:
        await runtime.close()
