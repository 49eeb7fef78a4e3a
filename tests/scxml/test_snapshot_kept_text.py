"""A snapshot takes the text an ecmascript session keeps of its objects while it waits as it is,
when that text is plain JSON (``DataModel.stored_variables``, ``snapshot.snapshot_json``): the
snapshot written so is the very text written by parsing it and encoding every value again, and
reads back the same. Tagged text (NaN, undefined, shared objects, functions, "$t" keys, dates),
a live context's values, the python datamodel's and text orjson would not write (integers beyond
64 bits, nesting beyond its limit, a lone surrogate) go the way they always went."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from engine.scxml import RUNNING, Event, SessionHost, compile_document, standard_registry
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits
from engine.scxml.session import Session
from engine.scxml.session_state import SessionState
from engine.scxml.snapshot import _joined, decode_state, encode_state, snapshot_json
from engine.storage.store import dumps

NS = 'xmlns="http://www.w3.org/2005/07/scxml"'


def ecmascript_host() -> SessionHost:
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(SandboxLimits()))
    return SessionHost(registry=registry)


def scripted(host: SessionHost, script: str) -> Session:
    doc = compile_document(f'<scxml {NS} datamodel="ecmascript" initial="s"><script><![CDATA[{script}]]></script>'
                           '<state id="s"><transition event="end" target="f"/></state><final id="f"/></scxml>',
                           registry=host.registry)
    return host.start_session(doc)


def both_ways(session: Session) -> tuple[str, str, SessionState]:
    """The snapshot taken from the kept text, then the one taken by parsing it (as before)."""
    state = session.to_state(for_snapshot=True)
    fast = snapshot_json(state, dumps)
    slow = dumps(encode_state(session.to_state()))
    return fast, slow, state


SCRIPTS = [  # (label, script, whether the waiting session's text is plain JSON)
    ("plain objects", "o = {a: 1, b: [1, 2.5, 'x', null, true], c: {d: {e: 'é'}}}; n = 3; s = 'x'; e = {};", True),
    ("escapes", r"o = {s: 'a\u0001b\"c\\', u: '\u2028', k: {'\n': 1}};", True),
    ("numbers", "o = {big: 18446744073709552000, neg: -9223372036854775809, safe: 9007199254740993, f: 1e21};",
     True),
    ("nan and infinities", "o = {nan: NaN, inf: Infinity, z: -0}; top = NaN; minus = -0;", False),
    ("undefined", "o = {u: undefined, a: [undefined, 1]}; u = undefined;", False),
    ("shared object", "var sh = {x: 1}; o = {one: sh, two: sh}; p = [sh];", False),
    ("functions", "f = function (x) { return x + 1; }; o = {g: 1};", False),
    ("a key of the tag's name", "o = {'$t': 'x', v: 1};", False),
    ("date and regexp", "o = {d: new Date(0), r: /x/g};", False),
]


@pytest.mark.parametrize(("label", "script", "plain"), SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_a_waiting_session_is_written_from_its_text_as_from_its_values(label: str, script: str, plain: bool) -> None:
    host = ecmascript_host()
    session = scripted(host, script)
    session.datamodel.hibernate()  # waiting: the objects as text
    fast, slow, state = both_ways(session)
    assert (state.data_text is not None) == plain, label
    assert fast == slow, label
    back = decode_state(json.loads(fast))
    assert back.data == decode_state(json.loads(slow)).data
    copy = Session.from_state(host, session.doc, session.id, back)  # and it is the session again
    assert dumps(encode_state(copy.to_state())) == slow


@pytest.mark.parametrize(("label", "script"), [(s[0], s[1]) for s in SCRIPTS], ids=[s[0] for s in SCRIPTS])
def test_a_session_with_a_live_context_is_written_from_its_values(label: str, script: str) -> None:
    session = scripted(ecmascript_host(), script)
    assert session.datamodel.live
    fast, slow, state = both_ways(session)
    assert state.data_text is None and fast == slow, label


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"n": value}
    return value


VALUES = [  # (label, an object variable's value put back from a snapshot, whether its text is plain JSON)
    ("within 64 bits", {"big": 2**63 - 1, "neg": -2**63, "u": 2**64 - 1}, True),
    ("beyond 64 bits", {"big": 2**70}, False),
    ("tuples and sets", {"t": (1, "a"), "s": {2}}, True),
    ("int keys", {1: "one", "x": {2: "two"}}, True),
    ("nested 250 deep", nested(250), True),
    ("nested 300 deep", nested(300), False),
]


@pytest.mark.parametrize(("label", "value", "plain"), VALUES, ids=[v[0] for v in VALUES])
def test_values_put_back_are_written_from_their_text_as_from_their_values(label: str, value: Any, plain: bool) -> None:
    session = scripted(ecmascript_host(), "n = 1;")
    session.datamodel.hibernate()
    session.datamodel.restore({"o": value, "p": [1, {"q": None}]})
    fast, slow, state = both_ways(session)
    assert (state.data_text is not None) == plain, label
    assert fast == slow, label


def test_text_with_a_name_twice_reads_back_as_its_values() -> None:
    """{1: .., "1": ..} is written with "1" twice (orjson's non-string keys); any JSON reader
    keeps the last, as parsing the text did."""
    session = scripted(ecmascript_host(), "n = 1;")
    session.datamodel.hibernate()
    session.datamodel.restore({"o": {1: "int", "1": "str"}})
    fast, slow, state = both_ways(session)
    assert state.data_text is not None
    assert decode_state(json.loads(fast)).data == decode_state(json.loads(slow)).data == {"n": 1, "o": {"1": "str"}}


def test_a_lone_surrogate_fails_the_snapshot_as_it_did() -> None:
    session = scripted(ecmascript_host(), "n = 1;")
    session.datamodel.hibernate()
    session.datamodel.restore({"o": {"s": "x\ud800"}})  # no JSON reader takes the text
    with pytest.raises(ValueError) as fast:
        snapshot_json(session.to_state(for_snapshot=True), dumps)
    with pytest.raises(ValueError) as slow:
        dumps(encode_state(session.to_state()))
    assert type(fast.value) is type(slow.value)


WAITING = f"""<scxml {NS} datamodel="ecmascript" initial="wait">
  <datamodel><data id="c_target"/><data id="n" expr="0"/><data id="_data" expr="{{}}"/></datamodel>
  <state id="wait">
    <transition event="target.found">
      <assign location="c_target" expr="_event.data.target"/>
      <assign location="n" expr="n + 1"/>
    </transition>
    <transition event="end" target="done"/>
  </state><final id="done"/></scxml>"""


def test_objects_assigned_without_a_context_are_written_from_the_text_they_go_into() -> None:
    """The callback flow's way: an event's object assigned, answered without a context; the
    first snapshot after it puts the object into the text and writes that text."""
    host = ecmascript_host()
    doc = compile_document(WAITING, registry=host.registry)
    session = host.start_session(doc, data={"_data": {"order": "A-1"}})
    session.send("target.found", {"target": {"agent": "a1", "dn": "1001", "skills": ["x", "y"]}})
    fast, slow, state = both_ways(session)
    assert host.registry.datamodel("ecmascript").pool.built == 0
    assert state.data_text is not None and '"c_target"' in state.data_text
    assert fast == slow
    assert json.loads(fast)["data"]["c_target"] == {"agent": "a1", "dn": "1001", "skills": ["x", "y"]}
    session.send("target.found", {"target": {"agent": "a2"}})
    fast, slow, _state = both_ways(session)
    assert fast == slow and json.loads(fast)["data"]["n"] == 2
    session.send("end")
    assert session.status == "finished"
    fast, slow, _state = both_ways(session)
    assert fast == slow


def test_the_python_datamodel_lists_what_it_cannot_store_either_way() -> None:
    host = SessionHost()
    doc = compile_document(f'<scxml {NS} datamodel="python" initial="s"><datamodel><data id="t" expr="(1, 2)"/>'
                           '<data id="f" expr="lambda: 1"/><data id="x" expr="float(\'nan\')"/></datamodel>'
                           '<state id="s"/></scxml>', registry=host.registry)
    session = host.start_session(doc)
    fast, slow, state = both_ways(session)
    assert state.data_text is None and fast == slow
    assert json.loads(fast)["lost"] == ["f"]


def test_what_orjson_refuses_beside_the_text_is_written_the_slow_way() -> None:
    state = SessionState(status=RUNNING, configuration=["s"], data={"a": 1}, data_text='{"o":{"x":[1]}}',
                         external=[Event("e", {"big": 2**70})])
    text = snapshot_json(state, dumps)
    assert text == dumps(encode_state(state))
    back = decode_state(json.loads(text))
    assert back.data == {"a": 1, "o": {"x": [1]}} and back.external[0].data == {"big": 2**70}


@pytest.mark.parametrize(("values", "more", "joined"), [
    (b'{"a":1}', b'{"o":{}}', b'{"a":1,"o":{}}'),
    (b"{}", b'{"o":{}}', b'{"o":{}}'),
    (b'{"a":1}', b"{}", b'{"a":1}'),
    (b'{"a":1}', b"{ }", b'{"a":1}'),
    (b"{}", b"{}", b"{}"),
])
def test_two_objects_are_joined_into_one(values: bytes, more: bytes, joined: bytes) -> None:
    assert orjson.loads(orjson.dumps({"data": _joined(values, more)})) == {"data": json.loads(joined)}
