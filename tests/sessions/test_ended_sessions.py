"""A session that ended lately is kept for queries and described only when asked; one holding a
live ecmascript context is described at once and let go, so its context goes with it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from engine.runtime import Runtime
from engine.scxml import Event
from engine.settings import Settings
from tests.support.eventually import eventually

COUNTING = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="s">
<datamodel><data id="count" expr="0"/><data id="note" expr="{'k': [1, 2]}"/></datamodel>
<state id="s">
  <transition event="bump"><assign location="count" expr="count + 1"/></transition>
  <transition event="stop" target="end"><assign location="count" expr="count + 100"/></transition>
</state><final id="end"/></scxml>"""

# A function in the datamodel: only a context holds it, so the session has one when it ends.
WITH_CONTEXT = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">
<datamodel><data id="count" expr="0"/></datamodel>
<script>function twice(x) { return 2 * x; }</script>
<state id="s">
  <transition event="stop" target="end"><assign location="count" expr="twice(21)"/></transition>
</state><final id="end"/></scxml>"""


def settings(tmp_path: Path) -> Settings:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "counting.scxml").write_text(COUNTING)
    (flows / "with_context.scxml").write_text(WITH_CONTEXT)
    return Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data", flows_dir=flows,
                         flow_watch_interval=0)


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[Runtime]:
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


async def test_an_ended_session_is_described_as_it_ended_when_asked(tmp_path: Path) -> None:
    async with running(tmp_path) as engine:
        manager = engine.manager
        session = manager.start_flow("counting")
        manager.send_to(session.id, Event("bump"))
        manager.send_to(session.id, Event("stop"))
        await eventually(lambda: session.id in manager.ended, timeout=2, expected="ended")
        kept = manager.ended[session.id]
        assert kept.session is session and kept.description is None, "kept as it is, not described yet"
        assert (kept.flow, kept.version) == ("counting", 1)
        await manager.commit()
        found = manager.describe(session.id)
        assert found is not None
        assert found["status"] == "finished" and found["flow"] == "counting" and found["version"] == 1
        assert found["datamodel"]["count"] == 101 and found["datamodel"]["note"] == {"k": [1, 2]}
        assert (await manager.find(session.id))["datamodel"]["count"] == 101


async def test_an_ended_session_holding_a_context_is_described_at_once_and_let_go(tmp_path: Path) -> None:
    async with running(tmp_path) as engine:
        manager = engine.manager
        session = manager.start_flow("with_context")
        sid = session.id
        assert session.datamodel.live, "the flow's function needs a context"
        manager.send_to(sid, Event("stop"))
        await eventually(lambda: sid in manager.ended, timeout=2, expected="ended")
        await manager.commit()
        kept = manager.ended[sid]
        assert kept.session is None and kept.description is not None
        assert kept.flow == "with_context"
        found = manager.describe(sid)
        assert found["status"] == "finished" and found["datamodel"]["count"] == 42
        datamodel = weakref.ref(session.datamodel)
        del session, kept
        gc.collect()
        assert datamodel() is None, "nothing keeps the ended session's datamodel (and its context)"
