"""The composition root builds every part with what it needs and closes them again."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.callbacks.flow_actions import ReportDesk
from engine.notifications.service import NotificationService
from engine.runtime import GC_YOUNG_THRESHOLD, Runtime, engine_registry
from engine.scxml import ExecutionError, SessionHost, compile_document
from engine.settings import Settings
from tests.support.eventually import eventually


def settings(tmp_path: Path, **kw) -> Settings:
    return Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data", **kw)


@pytest.mark.parametrize("persistence", [True, False])
async def test_every_part_is_there_from_the_start_and_closes(tmp_path: Path, persistence: bool) -> None:
    runtime = await Runtime.build(settings(tmp_path, persistence=persistence))
    try:
        # Nothing is set afterwards: the parts built together share one clock and one platform.
        assert runtime.callbacks.manager is runtime.manager and runtime.push.callbacks is runtime.callbacks
        assert runtime.callbacks.platform is runtime.simulator and runtime.push.platform is runtime.simulator
        assert runtime.callbacks.clock is runtime.clock is runtime.manager.clock
        assert (runtime.store is not None) == persistence
        assert runtime.push.outbox is runtime.notifications
        assert not hasattr(runtime.callbacks, "push") and not hasattr(runtime.callbacks, "notifications")
        await runtime.start()
        assert runtime.started_at > 0
    finally:
        await runtime.close()


async def test_the_report_desk_is_served_once() -> None:
    desk = ReportDesk()
    with pytest.raises(ExecutionError, match="no callback service"):
        desk.reports()

    class Reports:
        def flow_event(self, session, name, extra=None) -> None: ...

        def flow_update(self, session, state, reason, keys) -> None: ...

    desk.serve(Reports())
    with pytest.raises(RuntimeError, match="already served"):
        desk.serve(Reports())


async def test_without_a_service_or_platform_flows_compile_and_their_actions_fail_as_errors() -> None:
    """What the CLI's validation builds: the vocabulary, nothing behind it."""
    registry = engine_registry()
    doc = compile_document(
        '<scxml xmlns="http://www.w3.org/2005/07/scxml" xmlns:cb="urn:callback-engine:callback" '
        'datamodel="python"><state id="s"><onentry><cb:notify event="_cbe_on_dial_init"/></onentry>'
        '<transition event="error.execution" target="t"/></state>'
        '<state id="t"><onentry><send type="platform" event="dial"/></onentry>'
        '<transition event="error.communication" target="pass"/></state><final id="pass"/></scxml>',
        registry=registry, strict=True)
    host = SessionHost(registry=registry)
    session = host.start_session(doc)
    await eventually(lambda: not session.is_running, timeout=5, expected="the session finished")
    assert session.final_state == "pass"
    await host.close()


async def test_the_outbox_carries_a_kind_through_its_one_sender(tmp_path: Path) -> None:
    runtime = await Runtime.build(settings(tmp_path, persistence=False))
    try:
        outbox: NotificationService = runtime.notifications
        with pytest.raises(ValueError, match="already have a sender"):
            outbox.add_sender("fcm", runtime.push._deliver)  # push registered itself when built
        got = []

        async def sender(delivery) -> None:
            got.append((delivery.target, delivery.message))

        outbox.add_sender("test", sender)
        await runtime.start()
        outbox.enqueue("test", "k", "device-1", {"hello": "world"})
        await eventually(lambda: got, timeout=5, expected="the message delivered")
        assert got == [("device-1", {"hello": "world"})]
    finally:
        await runtime.close()


async def test_a_part_whose_close_hangs_is_named_and_left_and_the_rest_still_closes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    runtime = await Runtime.build(settings(tmp_path, shutdown_timeout=0.3))
    await runtime.start()
    stuck = asyncio.Event()

    async def never_answers() -> None:  # a close waiting on a peer that never answers
        await stuck.wait()

    monkeypatch.setattr(runtime.notifications, "close", never_answers)
    store_closed = []
    close_store = runtime.store.close

    async def counted_store_close() -> None:
        store_closed.append(True)
        await close_store()

    monkeypatch.setattr(runtime.store, "close", counted_store_close)
    await asyncio.wait_for(runtime.close(), 10)
    assert store_closed == [True]  # the steps after the stuck one ran
    [line] = [r.getMessage() for r in caplog.records if "did not finish" in r.getMessage()]
    assert line.startswith("stopping: the notifications did not finish within 0.3 s")
    assert "never_answers" in line and "Event.wait" in line  # where it waits


_SERVED = """
import asyncio, gc, json, sys
from pathlib import Path
from engine.runtime import Runtime
from engine.settings import Settings

async def main():
    folder = Path(sys.argv[1])
    before = gc.get_threshold()
    runtime = await Runtime.build(Settings.load(config_dir=folder / "none", env={}, data_dir=folder / "data"),
                                  freeze_gc=True)
    await runtime.start()
    print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count() > 0]))
    await runtime.close()

asyncio.run(main())
"""


def test_an_engine_owning_its_process_tunes_the_collector(tmp_path: Path) -> None:
    """``engine serve`` (``freeze_gc``): start-up's objects frozen, and the youngest generation
    collected every GC_YOUNG_THRESHOLD allocations, the older generations' settings kept. Its own
    process: freezing the test runner's objects would change every test after it."""
    done = subprocess.run([sys.executable, "-c", _SERVED, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    before, after, frozen = json.loads(done.stdout)
    assert after == [GC_YOUNG_THRESHOLD, *before[1:]] and frozen
    assert before[0] < GC_YOUNG_THRESHOLD
