"""``SessionManager.start_flow``: start parameters replace ``<data>`` values or become variables of
their own; names the datamodel reserves, and new variables that would hide a builtin, are refused.
What a set of names becomes is worked out once per flow version (``FlowVersion.start_names``), so
the same names must get the same answer every time."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.scxml import standard_registry
from engine.sessions.flows import FlowRegistry
from engine.sessions.manager import BadStartData, SessionManager

NS = 'xmlns="http://www.w3.org/2005/07/scxml"'
PYTHON = f"""<scxml {NS} datamodel="python" initial="s">
<datamodel><data id="a" expr="1"/><data id="len" expr="'mine'"/><data id="b" expr="a + 1"/></datamodel>
<state id="s"/></scxml>"""
ECMA = f"""<scxml {NS} datamodel="ecmascript" initial="s">
<datamodel><data id="a" expr="1"/><data id="b" expr="a + extra"/></datamodel>
<state id="s"/></scxml>"""


@pytest.fixture
async def manager(tmp_path: Path) -> SessionManager:
    (tmp_path / "py.scxml").write_text(PYTHON)
    (tmp_path / "js.scxml").write_text(ECMA)
    flows = FlowRegistry(tmp_path, standard_registry(), None, watch_interval=0)
    await flows.scan()
    return SessionManager(flows, None)


@pytest.mark.parametrize("round_", [1, 2])  # the second start takes the names worked out by the first
async def test_parameters_replace_data_or_become_variables(manager: SessionManager, round_: int) -> None:
    session = manager.start_flow("py", {"extra": round_, "a": 10 * round_, "len": "given"})
    assert session.variables == {"extra": round_, "a": 10 * round_, "len": "given", "b": 10 * round_ + 1}
    assert list(session.variables) == ["extra", "a", "len", "b"]  # the new variables first, then <data>
    js = manager.start_flow("js", {"a": 5, "extra": 2})
    assert js.variables == {"extra": 2, "a": 5, "b": 7}  # a <data> sees the new variables


@pytest.mark.parametrize("round_", [1, 2])
async def test_reserved_and_shadowing_names_are_refused(manager: SessionManager, round_: int) -> None:
    with pytest.raises(BadStartData, match=r"reserved by the datamodel: _event, _sessionid$"):
        manager.start_flow("py", {"_sessionid": 1, "ok": 1, "_event": 2})
    with pytest.raises(BadStartData, match=r"shadow python builtins in flow 'py': max, str \(rename"):
        manager.start_flow("py", {"str": 1, "len": 2, "max": 3})  # len is the flow's own <data>
    with pytest.raises(BadStartData, match="shadow ecmascript builtins in flow 'js': Math"):
        manager.start_flow("js", {"Math": 1, "extra": 1})
    assert not manager.sessions
