"""Issue 15: the tagged codec (and the XML DOM) are not compiled in every context, only in those
whose values need them: loaded before tagged text goes in, and when a value coming out needs it
(an expression's value is then taken once, its side effects not repeated)."""

from __future__ import annotations

from engine.scxml import SessionHost, compile_document, standard_registry
from engine.scxml.datamodel import Foreign
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits

HEAD = '<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">'


def make_host() -> SessionHost:
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(SandboxLimits()))
    return SessionHost(registry=registry)


def start(body: str):
    host = make_host()
    return host, host.start_session(compile_document(HEAD + body + "</scxml>", registry=host.registry))


def test_plain_values_never_load_the_codec() -> None:
    _, s = start("""<datamodel><data id="a" expr="({x: [1, 'two', null, true]})"/><data id="n" expr="1"/>
      </datamodel><state id="s"><transition event="go"><assign location="a.y" expr="n + 1"/>
      <assign location="n" expr="_event.data.k"/></transition></state>""")
    s.send("go", {"k": [1, {"b": None}]})
    assert s.variables["a"] == {"x": [1, "two", None, True], "y": 2} and s.variables["n"] == [1, {"b": None}]
    assert s.datamodel.live and not s.datamodel._with_codec


def test_a_value_that_needs_the_codec_comes_out_once_with_its_side_effects_once() -> None:
    _, s = start("""<datamodel><data id="n" expr="0"/><data id="got"/></datamodel><state id="s">
      <transition event="go"><assign location="got" expr="(n = n + 1, [new Date(5), undefined, -0])"/>
      </transition></state>""")
    s.send("go")
    assert s.datamodel._with_codec
    assert s.variables["n"] == 1  # the expression ran once, though its value was asked for twice
    when, missing, negzero = s.variables["got"]
    assert isinstance(when, Foreign) and when.form == {"$t": "date", "v": 5}
    assert isinstance(missing, Foreign) and missing.form == {"$t": "u"}
    assert isinstance(negzero, Foreign) and negzero.form == {"$t": "n", "v": "-0"}


def test_a_variable_read_after_a_script_loads_the_codec_when_it_needs_it() -> None:
    _, s = start("""<datamodel><data id="m" expr="({})"/></datamodel><state id="s">
      <transition event="go"><script>m = new Map([[1, 'one']]);</script></transition></state>""")
    s.send("go")
    assert not s.datamodel._with_codec
    assert s.datamodel.variable("m").form == {"$t": "map", "v": [[1, "one"]]}
    assert s.datamodel._with_codec


def test_tagged_event_data_and_saved_data_load_the_codec_before_they_go_in() -> None:
    _, s = start("""<datamodel><data id="seen" expr="''"/></datamodel><state id="s">
      <transition event="go" cond="_event.data.u === undefined &amp;&amp; 'u' in _event.data">
        <assign location="seen" expr="typeof _event.data.when + ':' + (_event.data.when instanceof Date)"/>
      </transition></state>""")
    s.send("go", {"u": Foreign({"$t": "u"}), "when": Foreign({"$t": "date", "v": 0})})
    assert s.variables["seen"] == "object:true" and s.datamodel._with_codec
    # a context rebuilt from saved tagged values loads it first too
    s.datamodel._kind.pool.drop_all()
    s.datamodel.restore({"back": Foreign({"$t": "big", "v": "12345678901234567890"})})
    s.send("go", {"u": Foreign({"$t": "u"}), "when": Foreign({"$t": "date", "v": 0})})
    assert s.datamodel.variable("back").form == {"$t": "big", "v": "12345678901234567890"}


def test_xml_data_gets_its_dom_in_a_context_built_from_saved_data() -> None:
    _, s = start("""<datamodel><data id="doc"><r><item k="1">a</item><item k="2">b</item></r></data>
      <data id="n" expr="0"/></datamodel><state id="s">
      <transition event="go"><assign location="n" expr="doc.getElementsByTagName('item').length"/></transition>
      </state>""")
    s.datamodel._kind.pool.drop_all()
    assert not s.datamodel.live
    s.send("go")
    assert s.variables["n"] == 2 and s.datamodel._with_codec


def test_a_dict_of_the_flow_shaped_like_a_reference_stays_a_dict() -> None:
    _, s = start("""<datamodel><data id="got" expr="''"/></datamodel><state id="s">
      <transition event="go"><assign location="got" expr="_event.data.$t + _event.data.v"/></transition>
      </state>""")
    s.datamodel.restore({"mine": {"$t": "ref", "v": 0}})
    s.send("go", {"$t": "ref", "v": 0})
    assert s.variables["got"] == "ref0"
    assert s.datamodel.variable("mine") == {"$t": "ref", "v": 0}
