"""``DataModel.declare_all`` (a session's start parameters and given ``<data>``, one call) leaves a
session's data as ``declare`` of each value in order does, for every kind of value and datamodel."""

from __future__ import annotations

import math
from typing import Any

import pytest

from engine.scxml import SessionHost, compile_document, standard_registry
from engine.scxml.datamodel import NO_VALUE, Foreign
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits, codec
from engine.scxml.events import AttrDict
from engine.scxml.snapshot import encode_state

VALUES: dict[str, Any] = {
    "ascii": "abc", "empty": "", "accented": "é", "yes": True, "no": False, "none": None,
    "small": 7, "safe_max": 2**53 - 1, "beyond": 2**53, "huge": 10**30, "half": 2.5, "whole": 3.0,
    "minus_zero": -0.0, "nan": math.nan, "inf": math.inf, "absent": NO_VALUE,
    "undef": Foreign({codec.TAG: "u"}), "obj": {"a": [1, "x"]}, "items": [1, 2], "attrs": AttrDict(k="v"),
}
DOC = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="{dm}" initial="s">
  <datamodel><data id="first" expr="1"/></datamodel><state id="s"/></scxml>"""


def _host() -> SessionHost:
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(SandboxLimits()))
    return SessionHost(registry=registry)


@pytest.mark.parametrize("dm", ["ecmascript", "python"])
@pytest.mark.parametrize("live", [False, True])
def test_declare_all_is_declare_of_each_in_order(dm: str, live: bool) -> None:
    host = _host()
    doc = compile_document(DOC.format(dm=dm), registry=host.registry)
    one, each = host.start_session(doc), host.start_session(doc)
    if live and dm == "ecmascript":  # a session holding a context: the values go in through it
        for s in (one, each):
            s.datamodel._prepare_context()
    one.datamodel.declare_all(VALUES)
    for name, value in VALUES.items():
        each.datamodel.declare(name, value)
    got, expected = one.datamodel.variables(), each.datamodel.variables()
    assert list(got) == list(expected)
    assert repr(got) == repr(expected)
    stored = encode_state(one.to_state())["data"]
    assert stored == encode_state(each.to_state())["data"]  # as stored, twice (packed the second time)
    assert repr(one.datamodel.variables()) == repr(each.datamodel.variables())
