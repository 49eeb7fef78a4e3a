"""Issue 15, attacked: the built-ins answered without a context (``ecmascript/builtins.py``) must
give the context's answer or decline (``NotHere``). A flow can shadow or change them (``<data
id="Math">``, ``Math.floor = ...``, ``Date.now = ...``, a getter, a class whose static block runs
when the context is rebuilt, a function arriving in an event), and arguments can be what this side
cannot convert exactly (-0, NaN, huge numbers, strings, objects)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.scxml.datamodel import Foreign
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits
from engine.scxml.ecmascript.local import NotHere
from engine.scxml.errors import ExecutionError
from engine.scxml.events import Event
from tests.scxml.test_ecmascript_builtins import typed
from tests.scxml.test_ecmascript_local_attack import start

KIND = EcmaScriptDataModel(SandboxLimits())
CLASS_42 = "class { static { Math.floor = function () { return 42; }; } }"


def answers(dm: Any, text: str, kind: EcmaScriptDataModel) -> tuple[Any, Any, bool]:
    """(this side's answer, or the session's when it declines; the context's; whether it declined).
    This side is asked first: the context's evaluation may change the session."""
    here = kind.compile_expr(text, 1, 1)
    assert here.code.local is not None, text
    declined = False
    try:
        mine = here.code.local(dm)
    except NotHere:
        declined = True
        mine = evaluated(dm, here)
    there = kind.compile_expr(text, 1, 1)
    there.code.local = None
    return mine, evaluated(dm, there), declined


RAISES = "error.execution"


def evaluated(dm: Any, code: Any) -> Any:
    try:
        return dm.evaluate(code)
    except ExecutionError:
        return RAISES


def probe(s: Any, text: str = "Math.floor(2.5)") -> tuple[Any, Any, bool]:
    dm = s.datamodel
    return answers(dm, text, dm._kind)


# ------------------------------------------------------------------ shadowing and reassignment
@pytest.mark.parametrize(("script", "text", "expected"), [
    ("Math.floor = function () { return 42; };", "Math.floor(2.5)", 42),
    ("Math = {floor: function () { return 42; }, PI: 3};", "Math.floor(2.5)", 42),
    ("Math = {floor: function () { return 42; }, PI: 3};", "Math.PI", 3),
    ("Date.now = function () { return 5; };", "Date.now()", 5),
    ("String = function () { return 'S'; };", "String(1)", "S"),
    ("Number = function () { return 9; };", "Number('1')", 9),
    ("parseInt = function () { return 9; };", "parseInt('1')", 9),
    ("parseFloat = function () { return 9; };", "parseFloat('1.5')", 9),
    ("Object.defineProperty(globalThis, 'Math', {get: function () { return {floor: function () { return 7; }}; },"
     " configurable: true});", "Math.floor(2.5)", 7),
    ("var real = Math.max; Math.max = function (a, b) { return real(a, b) + 100; };", "Math.max(1, 2)", 102),
])
def test_a_built_in_a_script_changed_is_the_contexts_while_that_context_lives(script: str, text: str,
                                                                            expected: Any) -> None:
    s = start(f"""<datamodel><data id="r" expr="0"/></datamodel><state id="s">
      <transition event="change"><script>{script}</script></transition></state>""")
    s.send("change")
    mine, theirs, declined = probe(s, text)
    assert declined and mine == theirs == expected


def test_a_built_in_changed_by_an_assign_to_its_member_is_the_contexts() -> None:
    """Math.floor is 5: calling it is a TypeError, not 2."""
    s = start("""<state id="s"><transition event="change"><assign location="Math.floor" expr="5"/>
      </transition></state>""")
    s.send("change")
    assert probe(s) == (RAISES, RAISES, True)


@pytest.mark.parametrize("declaration", ['<data id="Math" expr="5"/>', '<data id="Math">5</data>'])
def test_a_data_named_like_a_built_in_is_the_flows_variable(declaration: str) -> None:
    """Math is 5: Math.floor(2.5) is a TypeError (error.execution), not 2."""
    s = start(f"""<datamodel>{declaration}<data id="r" expr="0"/></datamodel><state id="s">
      <transition event="go"><assign location="r" expr="Math.floor(2.5)"/></transition>
      <transition event="error.execution" target="failed"/></state><final id="failed"/>""")
    here = s.datamodel._kind.compile_expr("Math.floor(2.5)", 1, 1)
    with pytest.raises(NotHere):
        here.code.local(s.datamodel)
    s.send("go")
    assert s.final_state == "failed" and s.variables["r"] == 0


def test_a_data_object_named_like_a_built_in_answers_with_its_own_function() -> None:
    s = start("""<datamodel><data id="Math" expr="({floor: function (x) { return 42; }, PI: 3})"/></datamodel>
      <state id="s"/>""")
    assert probe(s) == (42, 42, True)
    assert probe(s, "Math.PI") == (3, 3, True)
    s.datamodel._kind.pool.drop_all()
    assert probe(s) == (42, 42, True)  # the flow's object is kept when its context is dropped
    assert probe(s, "Math.PI") == (3, 3, True)
    assert "Math" in s.variables


@pytest.mark.parametrize("drop", [False, True])
def test_an_assign_to_a_built_ins_name_replaces_it(drop: bool) -> None:
    """Math is 5 after the assign (kept as a known value when the context is dropped): Math.floor(2.5)
    is a TypeError, not 2."""
    s = start("""<datamodel><data id="r" expr="0"/></datamodel><state id="s">
      <transition event="set"><assign location="Math" expr="5"/></transition>
      <transition event="go"><assign location="r" expr="Math.floor(2.5)"/></transition>
      <transition event="error.execution" target="failed"/></state><final id="failed"/>""")
    s.send("set")
    if drop:
        s.datamodel._kind.pool.drop_all()
    s.send("go")
    assert s.final_state == "failed" and s.variables["r"] == 0


def test_a_start_parameter_cannot_replace_a_built_in() -> None:
    dm = KIND.new_session({})
    with pytest.raises(ExecutionError):
        dm.set_variable("Math", 5)


def test_after_the_changed_context_is_dropped_the_rebuilt_one_and_this_side_agree() -> None:
    """A context rebuilt from the saved variables has the built-ins of a fresh one (the change was
    in the dropped context alone): this side answers again, and as that context does."""
    s = start("""<state id="s"><transition event="change"><script>Math.floor = function () { return 42; };</script>
      </transition></state>""")
    s.send("change")
    assert probe(s) == (42, 42, True)
    s.datamodel._kind.pool.drop_all()
    assert probe(s) == (2, 2, False)


# ------------------------------------------------------------------ code that runs when values go in
def test_a_class_whose_static_block_changes_a_built_in_runs_again_in_a_rebuilt_context() -> None:
    """The saved class is evaluated when the context is rebuilt, and its static block changes
    Math.floor there: without a context this side must decline, not answer 2."""
    s = start(f"""<datamodel><data id="C" expr="null"/></datamodel><state id="s">
      <transition event="define"><script>C = {CLASS_42};</script></transition></state>""")
    s.send("define")
    s.datamodel._kind.pool.drop_all()
    assert not s.datamodel.live
    assert probe(s) == (42, 42, True)


def test_a_function_arriving_in_the_event_is_the_contexts_to_run() -> None:
    kind = EcmaScriptDataModel(SandboxLimits())
    dm = kind.new_session({})
    dm.set_event(Event("ev", data={"f": Foreign({"$t": "fn", "v": CLASS_42})}))
    assert answers(dm, "Math.floor(2.5)", kind) == (42, 42, True)


def test_a_function_given_as_a_variable_is_the_contexts_to_run() -> None:
    kind = EcmaScriptDataModel(SandboxLimits())
    dm = kind.new_session({})
    dm.declare("C", Foreign({"$t": "fn", "v": CLASS_42}))
    dm.variables()  # a snapshot: the function is in the saved text, no context yet
    assert not dm.live
    assert answers(dm, "Math.floor(2.5)", kind) == (42, 42, True)


# ------------------------------------------------------------------ arguments this side does not convert
def session(values: dict[str, Any], data: Any = None) -> Any:
    dm = KIND.new_session({})
    for name, value in values.items():
        dm.declare(name, value)
    dm.set_event(Event("ev", data=data))
    return dm


VALUES = {"z": -0.0, "nan": float("nan"), "inf": float("inf"), "u": Foreign({"$t": "u"}), "nul": None,
          "s": "2.5", "t": True, "huge": 2**60}
DATA = {"big": 1e300, "tiny": 5e-324, "edge": 4503599627370495.5, "o": {"length": "x", "k": 1}, "list": [3, 1, 2],
        "digits": "12345678901234567890", "minus": -0.4}


@pytest.mark.parametrize("text", [
    # -0 results or arguments
    "Math.round(-0.4)", "Math.round(_event.data.minus)", "Math.ceil(-0.5)", "Math.trunc(-0.2)", "Math.round(-0.5)",
    "Math.sign(z)", "Math.min(0, z)", "Math.abs(z)", "Math.floor(z)", "String(z)", "Number('-0')", "parseInt('-0')",
    "parseFloat('-0.0')", "Number('-0.000')", "Math.max(z, z)",
    # NaN and the infinities
    "Math.sqrt(-1)", "Number('abc')", "Number(u)", "parseInt('x')", "parseFloat('')", "Math.floor(u)",
    "Math.floor(nan)", "Math.max(inf, 1)", "Math.pow(10, 400)", "Math.pow(2, -1)", "Number('Infinity')",
    "parseFloat('Infinity')", "parseInt('')",
    # huge and tiny
    "Math.floor(_event.data.big)", "Math.max(_event.data.big, 1)", "Math.sqrt(_event.data.big)", "Math.pow(2, 60)",
    "Math.round(_event.data.edge)", "Math.ceil(_event.data.tiny)", "Math.floor(huge)", "Number(huge)",
    "parseInt(_event.data.digits)", "parseFloat(_event.data.digits)", "Number(_event.data.digits)",
    "Math.round(_event.data.big) === _event.data.big",
    # coercions
    "Math.floor(s)", "Math.max(t, 0)", "Math.abs(nul)", "Math.floor(_event.data.o)", "Number(_event.data.list)",
    "String(_event.data.o)", "parseInt(2.5)", "parseFloat(t)", "parseInt('0x1A')", "parseInt('0x1A', 10)",
    "parseInt('12', 16)", "parseInt(' \u00a012')", "Number(' 12 ')", "Number('0x10')", "Number('1e3')",
    "parseFloat('1e3')", "parseFloat('1.5e3')", "parseFloat('.5')", "Number('.5')", "Number('5.')",
    # lengths
    "_event.data.o.length", "_event.data.list.length", "_event.data.missing.length", "t.length", "nul.length",
    "z.length", "String(inf).length",
])
def test_what_this_side_cannot_convert_is_the_contexts(text: str) -> None:
    mine, theirs, _ = answers(session(VALUES, DATA), text, KIND)
    assert typed(mine) == typed(theirs), (text, mine, theirs)


@pytest.mark.parametrize("text", [
    "Math.round(-0.4)", "Math.ceil(-0.5)", "Math.trunc(-0.2)", "Math.round(-0.5)", "Math.sign(z)", "Math.abs(z)",
    "Number('-0')", "parseInt('-0')", "parseFloat('-0.0')", "Math.sqrt(-1)", "Number('abc')", "Math.floor(nan)",
    "Math.floor(inf)", "Math.pow(10, 400)", "Math.floor(s)", "Math.abs(nul)", "parseInt('0x1A')",
    "parseInt(_event.data.digits)", "Number(' 12 ')", "String(z)", "Math.max(t, 0)", "_event.data.missing.length",
])
def test_those_are_declined_here_not_guessed(text: str) -> None:
    here = KIND.compile_expr(text, 1, 1)
    with pytest.raises(NotHere):
        here.code.local(session(VALUES, DATA))


@pytest.mark.parametrize("text", ["Math.floor()", "Math.floor(1, 2)", "Math.max()", "Math.hypot(3, 4)", "Date.now(1)",
                                  "Math.random()", "Date.parse('2020')", "Math.max(1, 2, 3, 4, 5, 6, 7, 8, 9)",
                                  "Math.floor.call(null, 2.5)", "Math['floor'](2.5)", "String(1,)", "s.toUpperCase()",
                                  "Math.floor(2.5).length"])
def test_calls_outside_the_answered_set_are_not_compiled_here(text: str) -> None:
    code = KIND.compile_expr(text, 1, 1)
    if code.code is not None and code.code.local is not None:
        with pytest.raises(NotHere):
            code.code.local(session(VALUES, DATA))
