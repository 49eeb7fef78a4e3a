"""Restart: sessions come back as they were, timers at their original due times, overdue ones
at once; invoked children come back linked to their parents; SIGTERM flushes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import ClientSession

from engine.runtime import Runtime
from engine.settings import Settings
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
