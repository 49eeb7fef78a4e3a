"""The datamodel port: a datamodel registered by name is what a document's ``datamodel`` chooses,
and sessions reach their data only through its ``DataModel``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from engine.scxml import Registry, SessionHost, compile_document
from engine.scxml.datamodel import DataModel, PythonData, PythonDataModel

NS = 'xmlns="http://www.w3.org/2005/07/scxml"'


class CountingData(PythonData):
    """Python data that counts evaluations and cannot be stored."""

    __slots__ = ("evaluations",)
    can_hibernate = False

    def __init__(self, system: Mapping[str, Any]):
        super().__init__(system)
        self.evaluations = 0

    def evaluate(self, expr):
        self.evaluations += 1
        return super().evaluate(expr)


class CountingKind(PythonDataModel):
    name = "counting"

    def new_session(self, system: Mapping[str, Any]) -> DataModel:
        return CountingData(system)


def test_a_registered_datamodel_is_chosen_by_name_and_used_for_every_expression() -> None:
    registry = Registry()
    registry.register_datamodel("counting", CountingKind)
    doc = compile_document(f'<scxml {NS} datamodel="counting"><datamodel><data id="x" expr="1 + 1"/>'
                           '</datamodel><state id="s"><transition event="e" cond="x == 2" target="f"/></state>'
                           '<final id="f"/></scxml>', registry=registry)
    assert doc.datamodel.name == "counting"
    session = SessionHost(registry=registry).start_session(doc)
    assert isinstance(session.datamodel, CountingData) and session.datamodel.evaluations == 1
    session.send("e")
    assert session.datamodel.evaluations == 2 and session.final_state == "f"
    assert session.variables == {"x": 2}
    with pytest.raises(ValueError, match="cannot be stored"):
        session.to_state()
    # another registry does not know it
    with pytest.raises(Exception, match="unknown datamodel 'counting'"):
        compile_document(f'<scxml {NS} datamodel="counting"><state id="s"/></scxml>', registry=Registry())


def test_the_python_and_null_datamodels_say_which_start_names_they_refuse() -> None:
    registry = Registry()
    python, null = registry.datamodel("python"), registry.datamodel("null")
    assert python.refused_names(["_event", "__x", "ok", "In"]) == ["_event", "__x", "In"]
    assert python.shadowing(["len", "ok"]) == ["len"]
    assert null.shadowing(["len"]) == [] and null.refused_names(["_sessionid"]) == ["_sessionid"]
    assert registry.datamodel("ecmascript") is None


def test_null_datamodel_sessions_have_no_variables_but_answer_in() -> None:
    doc = compile_document(f'<scxml {NS} datamodel="null"><parallel id="p"><state id="a" initial="a1">'
                           '<state id="a1"><transition cond="In(\'b\')" target="a2"/></state><state id="a2"/>'
                           '</state><state id="b"/></parallel></scxml>')
    session = SessionHost().start_session(doc)
    assert session.variables == {} and session.datamodel.variable("x") is None
    assert session.active_state_ids() == ["p", "a", "a2", "b"]  # In('b') held
