"""kill -9 with notification deliveries pending: after the restart all arrive, in order per
callback, and a message seen twice always carries the same webhook-id."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

from aiohttp import ClientSession

from tests.callbacks.conftest import BASE, write_config
from tests.notifications.conftest import _flows
from tests.support.engine_process import CLIENT_KEY, EngineProcess
from tests.support.eventually import eventually
from tests.support.receiver import Receiver

HEADERS = {"x-api-key": CLIENT_KEY}
CALLBACKS = 20


def first_arrivals(receiver: Receiver) -> dict[str, list[str]]:
    """Per callback, the event ids in the order their first copy arrived."""
    order: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for got in receiver.received:
        wid = got.headers["webhook-id"]
        if wid not in seen:
            seen.add(wid)
            order[got.body["message"]["_service_id"]].append(got.body["message"]["event_id"])
    return dict(order)


async def test_kill_9_with_deliveries_pending(tmp_path: Path) -> None:
    receiver = await Receiver(default_status=503).start()
    config = write_config(tmp_path)
    (config / "services" / "notified.json").write_text(json.dumps({
        "_service": "callback", "_enable_status_notification": "subscribe_notify",
        "_status_notification_target": receiver.url(), "_max_notify_delivery_attempts": 10_000}))
    engine = EngineProcess(tmp_path / "data", _flows(tmp_path), config_dir=str(config))
    await engine.start()
    try:
        async with ClientSession() as client:
            ids = []
            for i in range(CALLBACKS):
                async with client.post(f"{engine.url}{BASE}/notified", json={"_customer_number": f"+1555080{i:04d}"},
                                       headers=HEADERS) as r:
                    ids.append((await r.json())["_id"])
            await asyncio.sleep(1.0)  # callbacks run; their notifications pile up against the 503s
            engine.kill()
            receiver.default_status = 200
            await engine.start()

            async def progress() -> tuple[bool, dict[str, list[str]], dict[str, list[str]]]:
                expected = {}
                done = True
                for cid in ids:
                    async with client.get(f"{engine.url}{BASE}?_id={cid}", headers=HEADERS) as r:
                        done = done and (await r.json())[0]["_callback_state"] == "COMPLETED"
                    async with client.get(f"{engine.url}{BASE}/notified/{cid}/events", headers=HEADERS) as r:
                        expected[cid] = [e["event_id"] for e in await r.json()]
                return done, expected, first_arrivals(receiver)

            # every callback ends, then everything it recorded arrives
            _, expected, _ = await eventually(
                progress, lambda got: got[0] and got[2] == got[1], timeout=60, interval=0.2,
                expected="every callback ended and all it recorded delivered",
                seen=lambda got: f"ended {got[0]}, recorded {got[1]}, first arrivals {got[2]}")
            assert sum(len(v) for v in expected.values()) >= CALLBACKS * 10
        # duplicates only with the same webhook-id: same id, same message
        seen: dict[str, dict] = {}
        for got in receiver.received:
            wid = got.headers["webhook-id"]
            assert seen.setdefault(wid, got.body["message"]) == got.body["message"]
        assert "notifications:" in engine.log_path.read_text()  # the restart found deliveries to resume
    finally:
        engine.stop()
        await receiver.stop()
