"""Restart: sessions come back as they were, timers at their original due times, overdue ones
at once; invoked children come back linked to their parents; SIGTERM flushes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from aiohttp import ClientSession
from sqlalchemy import select

from engine.runtime import Runtime
from engine.scxml import Event
from engine.scxml.snapshot import decode_state, encode_event
from engine.sessions import rows
from engine.settings import Settings
from engine.storage import UnitOfWork, dumps
from tests.support.engine_process import CLIENT_KEY, EngineProcess
from tests.support.eventually import eventually

TIMERS = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="s">
<datamodel><data id="fired" expr="[]"/><data id="stamp" expr="{}"/></datamodel>
<state id="s">
  <onentry><send event="soon" delay="300ms"/><send event="later" delay="1500ms"/></onentry>
  <transition event="soon later"><script>import time
fired.append(_event.name)
stamp[_event.name] = time.time()</script></transition>
</state></scxml>"""

PARENT = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="wait">
<datamodel><data id="got" expr="[]"/></datamodel>
<state id="wait">
  <invoke id="kid" type="scxml"><content>
    <scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="k">
      <state id="k"><transition event="poke"><send target="#_parent" event="poked"/></transition>
      <transition event="bye" target="out"/></state><final id="out"/></scxml>
  </content></invoke>
  <transition event="go"><send target="#_kid" event="poke"/></transition>
  <transition event="poked"><assign location="got" expr="got + ['poked']"/></transition>
  <transition event="end"><send target="#_kid" event="bye"/></transition>
  <transition event="done.invoke.kid" target="done"/>
</state><final id="done"/></scxml>"""


def settings(tmp_path: Path) -> Settings:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "timers.scxml").write_text(TIMERS)
    (flows / "parent.scxml").write_text(PARENT)
    return Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data",
                         flows_dir=flows, flow_watch_interval=0)


async def test_timers_resume_at_their_original_due_times(tmp_path: Path) -> None:
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    started = time.time()
    session = engine.manager.start_flow("timers")
    sid = session.id
    await engine.manager.commit()
    await engine.close()
    await asyncio.sleep(0.6)  # "soon" is now overdue; "later" is not
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        restored = engine.manager.sessions[sid]
        assert restored.active_state_ids() == ["s"]
        await asyncio.sleep(0.05)
        assert restored.datamodel.variable("fired") == ["soon"]  # overdue: fired at once on restart
        await asyncio.sleep(1.2)
        assert restored.datamodel.variable("fired") == ["soon", "later"]
        assert abs(restored.datamodel.variable("stamp")["later"] - (started + 1.5)) < 0.15
    finally:
        await engine.close()


async def test_invoked_child_is_restored_and_linked(tmp_path: Path) -> None:
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    parent = engine.manager.start_flow("parent")
    await eventually(lambda: len(engine.manager.sessions) == 2, timeout=1, expected="the child invoked")
    pid = parent.id
    await engine.manager.commit()
    await engine.close()
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        mgr = engine.manager
        parent = mgr.sessions[pid]
        [child] = [s for s in mgr.sessions.values() if s.parent is parent]
        parent.send("go")
        got = await eventually(lambda: parent.datamodel.variable("got"), timeout=1, expected="the child's answer")
        assert got == ["poked"]
        parent.send("end")
        await eventually(lambda: not parent.is_running, timeout=1, expected="the parent finished")
        assert parent.final_state == "done" and not child.is_running
    finally:
        await engine.close()


async def test_sigterm_flushes_and_exits_cleanly(tmp_path: Path) -> None:
    proc = EngineProcess(tmp_path / "data", settings(tmp_path).flows_dir)
    await proc.start()
    async with ClientSession() as client:
        ids = []
        for _ in range(20):
            async with client.post(proc.url + "/scxml/session/start", json={"src": "timers"},
                                   headers={"x-api-key": CLIENT_KEY}) as r:
                ids.append((await r.json())["sessionid"])
        assert proc.stop() == 0
        assert "engine stopped" in proc.log()
        await proc.start()
        async with client.get(proc.url + "/scxml/sessions?status=running&limit=100",
                              headers={"x-api-key": CLIENT_KEY}) as r:
            running = {s["sessionid"] for s in (await r.json())["sessions"]}
        assert running == set(ids)
    proc.stop()


async def test_a_session_stored_between_its_restore_and_its_run_keeps_its_timers(tmp_path: Path) -> None:
    """A session restored with an event in flight to it is dirty at once (the event's inbox row is
    deleted with its next snapshot), and the writer may store it before ``run_restored`` lets it
    run (``callbacks.open`` reads the database meanwhile). That snapshot must hold its delayed
    sends: without them, a kill -9 before its next snapshot left the session waiting for ever for
    timers that no restart re-armed (tests/sessions/test_crash_restart.py: 52 sessions stuck)."""
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    sid = engine.manager.start_flow("timers").id
    await engine.manager.commit()
    await engine.close()
    engine = await Runtime.build(settings(tmp_path))  # an event in flight to it, as a crash leaves one
    unit = UnitOfWork()
    unit.add(rows.INBOX, [{"id": engine.store.new_id(), "session_id": sid, "event": dumps(encode_event(Event("poke"))),
                           "created_at": time.time()}])
    await engine.store.write(unit)
    await engine.store.close()

    engine = await Runtime.build(settings(tmp_path))
    stored_before_run = []
    open_callbacks = engine.callbacks.open

    async def open_then_write() -> None:  # the writer's batch lands before the sessions run
        await open_callbacks()
        await engine.manager.commit()
        row = await engine.store.fetch_one(select(rows.sessions).where(rows.sessions.c.id == sid))
        stored_before_run.append(decode_state(json.loads(row["snapshot"])))

    engine.callbacks.open = open_then_write
    await engine.start()
    try:
        [state] = stored_before_run
        assert [e.name for e in state.external] == ["poke"]  # the batch did hold it
        assert sorted(r.name for r in state.pending) == ["later", "soon"]
        session = engine.manager.sessions[sid]
        await eventually(lambda: session.datamodel.variable("fired"), lambda fired: len(fired) == 2, timeout=3,
                         expected="both timers fired")
        await asyncio.sleep(0.1)
        assert session.datamodel.variable("fired") == ["soon", "later"]  # each once
    finally:
        await engine.close()


async def test_an_event_in_flight_to_a_session_that_cannot_be_restored_is_kept(tmp_path: Path) -> None:
    """A session stored running that a start cannot rebuild (its snapshot unreadable by this
    version, say) is still stored running: the events in flight to it stay stored with it, for a
    start that can rebuild it. Before, the restore took them for events to an ended session and
    deleted them with its first batch, so that session came back without them."""
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    sid = engine.manager.start_flow("timers").id
    await engine.manager.commit()
    await engine.close()
    engine = await Runtime.build(settings(tmp_path))
    good = (await engine.store.fetch_one(select(rows.sessions).where(rows.sessions.c.id == sid)))["snapshot"]
    unit = UnitOfWork()
    unit.add(rows.INBOX, [{"id": engine.store.new_id(), "session_id": sid, "event": dumps(encode_event(Event("poke"))),
                           "created_at": time.time()}])
    await engine.store.write(unit)
    async with engine.store.engine.begin() as conn:  # a snapshot this version cannot read
        await conn.execute(rows.sessions.update().where(rows.sessions.c.id == sid).values(snapshot='{"v": 99}'))
    await engine.store.close()

    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        assert sid not in engine.manager.sessions
        await engine.manager.commit()
        await engine.manager.commit()
        inbox = await engine.store.fetch_all(select(rows.inbox).where(rows.inbox.c.session_id == sid))
        assert len(inbox) == 1, "the event in flight to it was deleted"
        async with engine.store.engine.begin() as conn:  # the next version reads it again
            await conn.execute(rows.sessions.update().where(rows.sessions.c.id == sid).values(snapshot=good))
    finally:
        await engine.close()
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        session = engine.manager.sessions[sid]
        await engine.manager.commit()
        await eventually(lambda: session.datamodel.variable("fired"), lambda fired: len(fired) == 2, timeout=3,
                         expected="both timers fired")
        await engine.manager.commit()
        inbox = await engine.store.fetch_all(select(rows.inbox).where(rows.inbox.c.session_id == sid))
        assert inbox == []  # taken in by the session at last
    finally:
        await engine.close()
