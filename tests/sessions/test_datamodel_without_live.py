"""A datamodel plugin written against the port before ``DataModel.live`` (every member but it)
still ends its sessions: each is described at once, as every one was, and the end listeners
(the callback service) hear of it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.scxml import standard_registry
from engine.scxml.datamodel import PythonData, PythonDataModel
from engine.sessions.flows import FlowRegistry
from engine.sessions.manager import SessionManager

FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="plugin" initial="s">
<datamodel><data id="count" expr="0"/></datamodel>
<state id="s"><transition event="stop" target="end"/></state><final id="end"/></scxml>"""


class PluginData:
    """A datamodel of the port's members before this change (here by delegation)."""

    can_hibernate = True

    def __init__(self, system: Mapping[str, Any]):
        self._inner = PythonData(system)
        for name in ("evaluate", "test", "execute", "assign", "declare", "declare_all", "set_variable",
                     "variable", "defines", "lookup", "set_event", "variables", "stored_variables", "restore"):
            setattr(self, name, getattr(self._inner, name))


class PluginKind(PythonDataModel):
    name = "plugin"

    def new_session(self, system: Mapping[str, Any]) -> PluginData:  # type: ignore[override]
        return PluginData(system)


async def test_a_plugin_datamodels_session_ends(tmp_path: Path) -> None:
    registry = standard_registry().copy()
    registry.register_datamodel("plugin", PluginKind)
    (tmp_path / "f.scxml").write_text(FLOW)
    flows = FlowRegistry(tmp_path, registry, None, watch_interval=0)
    await flows.scan()
    manager = SessionManager(flows, None)
    ended: list[str] = []
    manager.on_session_end.append(lambda s: ended.append(s.id))
    session = manager.start_flow("f")
    try:
        session.send("stop")
    except AttributeError:
        pass
    assert session.status == "finished"
    assert ended == [session.id] and session.id not in manager.sessions
