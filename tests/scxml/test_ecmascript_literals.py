"""Issue 15: literal expressions (``''``, ``3``, ``true``, ``({})``, ...) are answered on the
Python side, without a call into the context, and give exactly what the context would give."""

from __future__ import annotations

import json

import pytest

from engine.scxml import SessionHost, compile_document, standard_registry
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits
from engine.scxml.ecmascript.code import literal_value
from engine.scxml.ecmascript.sandbox import new_context

HEAD = '<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">'


@pytest.mark.parametrize("text", [
    "''", "'abc'", '"x y"', "'It is'", "3", "-3", "0", "0.5", "-12.25", "3.0", "123456789012345",
    "true", "false", "null", "({})", "{}", "[]", "([])", "'<a b=\"c\">'",
])
def test_a_literal_is_what_the_context_makes_of_it(text: str) -> None:
    make = literal_value(text)
    assert make is not None
    ctx = new_context(SandboxLimits())
    assert ctx.eval(f"JSON.stringify(({text}))") == json.dumps(make(), separators=(",", ":"))


@pytest.mark.parametrize("text", [
    "-0", "-0.0", "'a\\nb'", "'it''s'", "1e5", "0123", "1234567890123456", "undefined", "NaN", "Infinity",
    "x", "'a' + 'b'", "({a: 1})", "[1]", "'a\u2028b'",
])
def test_what_is_not_a_plain_literal_is_left_to_the_context(text: str) -> None:
    assert literal_value(text) is None


def test_each_evaluation_of_an_empty_object_is_a_new_object() -> None:
    make = literal_value("({})")
    assert make is not None and make() is not make()


def make_host() -> SessionHost:
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(SandboxLimits()))
    return SessionHost(registry=registry)


def test_literals_in_a_session_behave_as_in_the_context() -> None:
    host = make_host()
    doc = compile_document(HEAD + """
      <datamodel>
        <data id="s" expr="'text'"/><data id="n" expr="3"/><data id="f" expr="0.5"/>
        <data id="t" expr="true"/><data id="a" expr="({})"/>
        <data id="b" expr="({})"/><data id="z"/><data id="l" expr="[]"/><data id="neg" expr="-0"/>
      </datamodel>
      <state id="s">
        <onentry>
          <assign location="a.k" expr="1"/>
          <assign location="z" expr="null"/>
          <if cond="false"><assign location="s" expr="'wrong'"/><elseif cond="({})"/>
            <assign location="t" expr="false"/></if>
        </onentry>
        <transition cond="s === 'text' &amp;&amp; n === 3 &amp;&amp; f === 0.5 &amp;&amp; t === false
            &amp;&amp; z === null &amp;&amp; a.k === 1 &amp;&amp; b.k === undefined &amp;&amp; a !== b
            &amp;&amp; Array.isArray(l) &amp;&amp; l.length === 0 &amp;&amp; 1 / neg === -Infinity" target="pass"/>
        <transition target="fail"/>
      </state><final id="pass"/><final id="fail"/></scxml>""", registry=host.registry)
    assert host.start_session(doc).final_state == "pass"


def test_a_session_of_literal_data_only_compiles_no_function_for_them() -> None:
    host = make_host()
    kind = host.registry.datamodel("ecmascript")
    doc = compile_document(HEAD + """
      <datamodel><data id="a" expr="''"/><data id="b" expr="7"/><data id="c" expr="({})"/></datamodel>
      <state id="s"><transition event="go" cond="b === 7" target="pass"/></state>
      <final id="pass"/></scxml>""", registry=host.registry)
    session = host.start_session(doc)
    session.send("go")
    assert session.final_state == "pass"
    # the three literals took no function, and the condition is answered without a context
    # (local.py): no context was built at all
    assert kind.pool.built == 0 and not session.datamodel.live
