"""A session whose stored state would be larger than ``max_session_state_bytes`` is failed with
the cause, stored without its data and not run again after a restart; sessions within the bound
run on, and the bound is a setting with a floor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runtime import Runtime
from engine.scxml import Event
from engine.sessions import rows as session_rows
from engine.settings import Settings
from tests.support.eventually import eventually

LIMIT = 64 * 1024

GROWING = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="s">
<datamodel><data id="blob" expr="''"/></datamodel>
<state id="s">
  <transition event="grow"><assign location="blob" expr="blob + 'x' * _event.data['size']"/></transition>
  <transition event="grow_and_end" target="end"><assign location="blob" expr="'x' * _event.data['size']"/></transition>
</state><final id="end"/></scxml>"""

# Its object is kept as text while the session waits, and the snapshot writes that text as it is.
GROWING_OBJECT = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">
<datamodel><data id="o"/></datamodel>
<state id="s"><transition event="grow"><assign location="o" expr="_event.data"/></transition></state></scxml>"""


def settings(tmp_path: Path, limit: int = LIMIT) -> Settings:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "growing.scxml").write_text(GROWING)
    (flows / "growing_object.scxml").write_text(GROWING_OBJECT)
    return Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data", flows_dir=flows,
                         flow_watch_interval=0, max_session_state_bytes=limit)


async def test_a_session_grown_beyond_the_bound_is_failed_and_stored_without_its_data(tmp_path: Path) -> None:
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        manager = engine.manager
        big, small = manager.start_flow("growing"), manager.start_flow("growing")
        manager.send_to(big.id, Event("grow", {"size": LIMIT // 2}))
        manager.send_to(small.id, Event("grow", {"size": LIMIT // 2}))
        await manager.commit()
        await eventually(lambda: len(big.datamodel.variable("blob")) == LIMIT // 2, timeout=2, expected="grown once")
        await manager.commit()
        assert big.is_running, "half the bound is within it"

        # Multi-byte characters count as the bytes they take: 33,000 of them are 66,000 bytes.
        big.datamodel.set_variable("blob", "é" * 33_000)
        manager.session_changed(big)
        await manager.commit()
        await manager.commit()
        assert big.status == "failed", big
        assert "max_session_state_bytes" in (big.error or "") and "it is 66,1" in big.error, big.error
        row = await session_rows.get_session(manager.store, big.id)
        assert row["status"] == "failed" and len(row["snapshot"]) < 2_000, len(row["snapshot"])
        assert "max_session_state_bytes" in json.loads(row["snapshot"])["error"]
        assert manager.describe(big.id)["datamodel"] == {}, "it is described without the data"
        assert manager.ended[big.id].session is None, "nothing holds on to the data that was too much"

        assert small.is_running  # the other session runs on
        manager.send_to(small.id, Event("grow", {"size": 1_000}))
        await manager.commit()
        await eventually(lambda: len(small.datamodel.variable("blob")) == LIMIT // 2 + 1_000, timeout=2,
                         expected="the small session's event taken")
        sids = big.id, small.id
    finally:
        await engine.close()

    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        assert sids[0] not in engine.manager.sessions
        assert engine.manager.sessions[sids[1]].is_running
    finally:
        await engine.close()


async def test_an_object_kept_as_text_counts_toward_the_bound(tmp_path: Path) -> None:
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        manager = engine.manager
        session = manager.start_flow("growing_object")
        manager.send_to(session.id, Event("grow", {"text": "x" * (LIMIT // 2)}))
        await manager.commit()
        await eventually(lambda: len(session.datamodel.variable("o")["text"]) == LIMIT // 2, timeout=2,
                         expected="grown once")
        await manager.commit()
        assert session.is_running and session.to_state(for_snapshot=True).data_text is not None
        manager.send_to(session.id, Event("grow", {"text": "é" * 33_000}))
        await manager.commit()
        await eventually(lambda: not session.is_running, timeout=2, expected="the session failed")
        assert "max_session_state_bytes" in (session.error or "") and "it is 66,1" in session.error, session.error
        await manager.commit()
        row = await session_rows.get_session(manager.store, session.id)
        assert row["status"] == "failed" and len(row["snapshot"]) < 2_000, len(row["snapshot"])
    finally:
        await engine.close()


async def test_a_session_that_ends_beyond_the_bound_is_stored_as_ended_without_its_data(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        manager = engine.manager
        session = manager.start_flow("growing")
        manager.send_to(session.id, Event("grow_and_end", {"size": 2 * LIMIT}))
        await manager.commit()
        await eventually(lambda: not session.is_running, timeout=2, expected="the session ended")
        await manager.commit()
        row = await session_rows.get_session(manager.store, session.id)
        assert row["status"] == "finished" and len(row["snapshot"]) < 2_000, (row["status"], len(row["snapshot"]))
        assert session.status == "finished"
        assert "its end is stored without its data" in caplog.text
    finally:
        await engine.close()


async def test_a_session_restored_with_more_state_than_the_bound_runs_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Stored under a larger bound (or before there was one), it is not lost at a restart."""
    engine = await Runtime.build(settings(tmp_path, limit=2 * LIMIT))
    await engine.start()
    session = engine.manager.start_flow("growing")
    sid = session.id
    engine.manager.send_to(sid, Event("grow", {"size": LIMIT + LIMIT // 2}))
    await engine.manager.commit()
    await eventually(lambda: len(session.datamodel.variable("blob")) == LIMIT + LIMIT // 2, timeout=2,
                     expected="grown beyond the next run's bound")
    await engine.manager.commit()
    await engine.close()

    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        manager = engine.manager
        restored = manager.sessions[sid]
        assert "was stored with more state than max_session_state_bytes" in caplog.text
        manager.send_to(sid, Event("grow", {"size": 1_000}))
        await manager.commit()
        await eventually(lambda: len(restored.datamodel.variable("blob")) == LIMIT + LIMIT // 2 + 1_000, timeout=2,
                         expected="the restored session's event taken")
        await manager.commit()
        assert restored.is_running
        row = await session_rows.get_session(manager.store, sid)
        assert row["status"] == "running" and len(row["snapshot"]) > LIMIT + LIMIT // 2 + 1_000
        fresh = manager.start_flow("growing")  # the bound still holds for every other session
        manager.send_to(fresh.id, Event("grow", {"size": LIMIT}))
        await manager.commit()
        await eventually(lambda: not fresh.is_running, timeout=2, expected="the new session failed")
    finally:
        await engine.close()


def test_the_bound_has_a_floor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_session_state_bytes must be at least 65536"):
        Settings.load(config_dir=tmp_path / "none", env={"CALLBACK_ENGINE_MAX_SESSION_STATE_BYTES": "1000"})
    assert Settings.load(config_dir=tmp_path / "none", env={}).max_session_state_bytes == 1024 * 1024
