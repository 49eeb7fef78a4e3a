"""``DataModel.lookup`` (one call, for status event attributes) answers as ``variable`` after
``defines`` does, in every datamodel and every state a session's data can be in."""

from __future__ import annotations

from typing import Any

import pytest

from engine.scxml import SessionHost, compile_document, standard_registry
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits

DOCS = {
    "ecmascript": """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">
      <datamodel><data id="text" expr="'abc'"/><data id="count" expr="3"/><data id="nothing"/>
        <data id="none" expr="null"/><data id="obj" expr="({a: [1, 'x']})"/></datamodel>
      <state id="s">
        <transition event="script"><script>obj.a.push(2); made = 'here'; count = count + 1;</script></transition>
        <transition event="assign"><assign location="text" expr="'changed'"/></transition>
      </state></scxml>""",
    "python": """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="s">
      <datamodel><data id="text" expr="'abc'"/><data id="count" expr="3"/><data id="nothing"/>
        <data id="none" expr="None"/><data id="obj" expr="{'a': [1, 'x']}"/></datamodel>
      <state id="s">
        <transition event="script"><script>obj['a'].append(2); made = 'here'; count = count + 1</script></transition>
        <transition event="assign"><assign location="text" expr="'changed'"/></transition>
      </state></scxml>""",
}
NAMES = ["text", "count", "nothing", "none", "obj", "made", "missing", "_sessionid", "_event", "_name", "In",
         "__builtins__", "Math", "undefined"]
ABSENT = object()


def _expected(data: Any, name: str) -> Any:
    return data.variable(name) if data.defines(name) else ABSENT


@pytest.mark.parametrize("dm", sorted(DOCS))
def test_lookup_is_variable_if_defined_in_every_state(dm: str) -> None:
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(SandboxLimits()))
    host = SessionHost(registry=registry)
    session = host.start_session(compile_document(DOCS[dm], registry=host.registry))
    data = session.datamodel

    def check(when: str) -> None:
        for name in NAMES:
            got = data.lookup(name, ABSENT)
            expected = _expected(data, name)
            assert repr(got) == repr(expected), (when, name)
        assert data.lookup("missing") is None

    check("fresh")
    data.variables()  # a snapshot: the ECMAScript data is packed
    check("packed")
    session.send("assign")
    check("assigned")
    session.send("script")  # code ran in a context: only it knows the values
    check("after a script")
    data.variables()
    check("after a script, saved")
