"""``<data expr="null"/>`` declares null, and a ``<data>`` without a value declares undefined
(ECMAScript) or None (python): the session used to pass None for both, so ECMAScript saw
undefined where the author wrote null."""

from __future__ import annotations

from engine.scxml import SessionHost, compile_document, standard_registry
from engine.scxml.datamodel import Foreign
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits


def start(datamodel: str, body: str, binding: str = "early"):
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(SandboxLimits()))
    host = SessionHost(registry=registry)
    head = (f'<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="{datamodel}" binding="{binding}" '
            'initial="s">')
    return host.start_session(compile_document(head + body + "</scxml>", registry=host.registry))


ECMA = """<datamodel><data id="n" expr="null"/><data id="u"/><data id="bad" expr="no_such_name"/></datamodel>
  <state id="s">
    <transition event="check" cond="n === null &amp;&amp; u === undefined &amp;&amp; bad === undefined"
                target="pass"/>
    <transition event="check" target="fail"/>
  </state><final id="pass"/><final id="fail"/>"""


def test_ecmascript_null_data_is_null_and_data_without_a_value_is_undefined() -> None:
    s = start("ecmascript", ECMA)
    assert s.variables["n"] is None
    assert s.variables["u"] == Foreign({"$t": "u"}) and s.variables["bad"] == Foreign({"$t": "u"})
    s.send("check")
    assert s.final_state == "pass"


def test_ecmascript_null_data_stays_null_in_a_context_rebuilt_from_its_snapshot() -> None:
    s = start("ecmascript", ECMA)
    s.to_state()
    s.datamodel._kind.pool.drop_all()
    s.send("check")
    assert s.final_state == "pass"


def test_ecmascript_late_binding_null_data() -> None:
    s = start("ecmascript", """<state id="s">
      <datamodel><data id="n" expr="null"/></datamodel>
      <transition cond="n === null" target="pass"/><transition target="fail"/>
    </state><final id="pass"/><final id="fail"/>""", binding="late")
    assert s.final_state == "pass"


def test_python_data_without_a_value_and_null_are_both_none() -> None:
    s = start("python", """<datamodel><data id="n" expr="None"/><data id="u"/></datamodel>
      <state id="s"><transition cond="n is None and u is None" target="pass"/><transition target="fail"/>
      </state><final id="pass"/><final id="fail"/>""")
    assert s.final_state == "pass"
    assert s.variables == {"n": None, "u": None}
