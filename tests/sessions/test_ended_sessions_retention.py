"""An ended session kept for queries (EndedSession) keeps no more than its description would:
not the last event's data, which the flow never stored (it may be a request's whole body)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

from engine.scxml import Event, standard_registry
from engine.sessions.flows import FlowRegistry
from engine.sessions.manager import SessionManager

FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="s">
<datamodel><data id="count" expr="0"/></datamodel>
<state id="s"><transition event="stop" target="end"/></state><final id="end"/></scxml>"""


class Payload:
    """Stands for a large event body (an API event may carry ~256 KB)."""


async def test_an_ended_session_does_not_keep_its_last_events_data(tmp_path: Path) -> None:
    (tmp_path / "f.scxml").write_text(FLOW)
    flows = FlowRegistry(tmp_path, standard_registry(), None, watch_interval=0)
    await flows.scan()
    manager = SessionManager(flows, None)
    session = manager.start_flow("f")
    sid = session.id
    payload = Payload()
    gone = weakref.ref(payload)
    manager.send_to(sid, Event("stop", {"body": payload}))
    del payload
    for _ in range(20):
        await asyncio.sleep(0)
    assert sid in manager.ended and manager.describe(sid)["status"] == "finished"
    del session
    gc.collect()
    assert gone() is None, "the ended session keeps its last event's data (up to ENDED_KEPT of them)"
