"""A restart restores the pushes still to be delivered before the callbacks they are about: none
is attempted before those records are loaded, or what its outcome changes in its record is lost."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from engine.callbacks.bus import AttemptFailed
from engine.push.fcm import PushFailure
from engine.runtime import Runtime
from engine.settings import Settings
from tests.callbacks.conftest import write_config
from tests.conftest import REPO
from tests.push.test_rules import device
from tests.support.eventually import eventually


def settings(tmp_path: Path) -> Settings:
    config = tmp_path / "config"
    if not config.exists():
        write_config(tmp_path)
        # waits in a queue without agents, and for long: nothing ends it while the test runs
        (config / "services" / "waiting.json").write_text(json.dumps({
            "_service": "callback", "_urs_virtual_queue": "Empty_VQ", "_ttl": 86400}))
    return Settings.load(config_dir=config, env={}, data_dir=tmp_path / "data", flows_dir=REPO / "scxml",
                         flow_watch_interval=0)


async def test_a_restored_push_is_attempted_only_once_its_callback_is_loaded(tmp_path: Path) -> None:
    """A push pending at a stop is restored by ``notifications.open``; its attempt used to start at
    once, while ``callbacks.open`` was still reading the records. FCM answering that its device
    token is gone then found no record to drop the token from: the push was dead-lettered and the
    record kept the dead token for good (every later push went to it again)."""
    engine = await Runtime.build(settings(tmp_path))

    async def fcm_down(message: dict) -> None:
        raise PushFailure("HTTP 503", retry=True)

    engine.fcm.send = fcm_down  # type: ignore[method-assign]
    await engine.start()
    try:
        record = await engine.callbacks.create("waiting", {"_customer_number": "+15550990001", "_device_os": "fcm",
                                                           "_device_notification_id": device(1)})
        cid = record["_id"]
        engine.bus.publish(AttemptFailed(engine.callbacks.records[cid], 1, 3))  # a push, pending: FCM is down
        await engine.manager.commit()
        assert [d.type for d in engine.notifications.dispatcher.of_callback(cid)] == ["fcm"]
    finally:
        await engine.close()

    engine = await Runtime.build(settings(tmp_path))
    sent: list[str] = []

    async def token_gone(message: dict) -> None:
        sent.append(message["data"]["event"])
        raise PushFailure("HTTP 404 UNREGISTERED", retry=False, drop_token=True)

    engine.fcm.send = token_gone  # type: ignore[method-assign]
    open_callbacks = engine.callbacks.open

    async def slow_open() -> None:  # reading many records takes a while: FCM answers meanwhile
        for _ in range(40):
            if sent:
                break
            await asyncio.sleep(0.025)
        await open_callbacks()

    engine.callbacks.open = slow_open  # type: ignore[method-assign]
    await engine.start()
    try:
        await eventually(lambda: sent, timeout=3, expected="the restored push attempted")
        record = engine.callbacks.records[cid]
        await eventually(lambda: "_device_notification_id" not in record, timeout=3,
                         expected="the dead token dropped from its record")
        assert record["_device_token_dropped"] == "true"
        await engine.manager.commit()
    finally:
        await engine.close()
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        assert "_device_notification_id" not in engine.callbacks.records[cid]  # stored so
    finally:
        await engine.close()
