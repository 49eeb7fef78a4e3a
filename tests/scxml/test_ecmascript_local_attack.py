"""Issue 15, attacked: ``ecmascript/local.py`` answers expressions without a context and must give
exactly what the context gives (value and Python type), or decline (``NotHere``).

Each focused test below names one divergence found by comparing the two on the same session; the
last test compares them on expressions and values generated over the subset's grammar."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.scxml import SessionHost, compile_document, standard_registry
from engine.scxml.datamodel import NO_VALUE, Foreign
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits
from engine.scxml.ecmascript.local import NotHere
from engine.scxml.errors import ExecutionError
from engine.scxml.events import Event

KIND = EcmaScriptDataModel(SandboxLimits())


def session(values: dict[str, Any], data: Any = None, kind: EcmaScriptDataModel = KIND) -> Any:
    dm = kind.new_session({"_sessionid": "sid", "_name": "n"})
    for name, value in values.items():
        dm.declare(name, value)
    dm.set_event(Event("ev", data=data))
    return dm


def typed(v: Any) -> Any:
    """``v`` with every part's type, floats by ``repr`` (NaN equal to itself, -0.0 not 0.0)."""
    if isinstance(v, float):
        return ("float", repr(v))
    if isinstance(v, dict):
        return (type(v).__name__, sorted((k, typed(x)) for k, x in v.items()))
    if isinstance(v, list):
        return (type(v).__name__, [typed(x) for x in v])
    if isinstance(v, Foreign):
        return ("Foreign", repr(v.form))
    return (type(v).__name__, v)


def local_answer(dm: Any, text: str, kind: EcmaScriptDataModel = KIND) -> Any:
    """What the session answers with this side's function in place: its answer, or, when it
    declines (``NotHere``, always allowed), the session's own evaluation (the context's)."""
    code = kind.compile_expr(text, 1, 1)
    assert code.error is None, code.error
    assert code.code.local is not None, f"{text!r} is not in the subset"
    try:
        return code.code.local(dm)
    except NotHere:
        return dm.evaluate(code)


def context_answer(dm: Any, text: str, kind: EcmaScriptDataModel = KIND) -> Any:
    """What the context answers (the local function taken away)."""
    code = kind.compile_expr(text, 1, 1)
    code.code.local = None
    return dm.evaluate(code)


def assert_same(values: dict[str, Any], data: Any, text: str) -> None:
    """The local answer, if any, is the context's, for ``text`` in a session with ``values``."""
    mine = local_answer(session(values, data), text)
    theirs = context_answer(session(values, data), text)
    assert typed(mine) == typed(theirs), f"{text}: local {mine!r}, context {theirs!r}"


# ------------------------------------------------------------------ non-finite known values
# <data id="limit">Infinity</data> (values.text_value parses it as JSON: float('inf')), or a start
# parameter / form value "-Infinity" (basichttp._literal): a known float that is not finite. The
# context is given it as JSON, where orjson writes it as null, so there it is null.

@pytest.mark.parametrize("text", ["3 < limit", "limit > 1", "limit === null", "(limit)"])
def test_an_infinite_known_value_is_null_in_the_context(text: str) -> None:
    """Divergence: known ``limit = Infinity``: local treats it as Infinity (``3 < limit`` true,
    ``limit === null`` false, ``(limit)`` inf), the context holds null (false, true, None)."""
    assert_same({"limit": math.inf}, None, text)


@pytest.mark.parametrize("text", ["low < 0", "low === null"])
def test_a_minus_infinite_known_value_is_null_in_the_context(text: str) -> None:
    """Divergence: known ``low = -Infinity``: local ``low < 0`` true, context (null < 0) false."""
    assert_same({"low": -math.inf}, None, text)


@pytest.mark.parametrize("text", ["x === null", "x == undefined", "(x)"])
def test_a_nan_known_value_is_null_in_the_context(text: str) -> None:
    """Divergence: known ``x = NaN`` (``<data id="x">NaN</data>``): local ``x === null`` false,
    ``(x)`` nan; the context holds null (true, None)."""
    assert_same({"x": math.nan}, None, text)


def test_the_remainder_of_an_infinite_known_value_does_not_raise_a_python_error() -> None:
    """Divergence: ``limit % 2`` with known ``limit = Infinity``: local raises ValueError (math.fmod's
    domain error, not NotHere, so ``evaluate`` lets it escape); the context answers 0 (null % 2)."""
    dm = session({"limit": math.inf})
    code = KIND.compile_expr("limit % 2", 1, 1)
    assert typed(dm.evaluate(code)) == typed(context_answer(session({"limit": math.inf}), "limit % 2"))


HEAD = '<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">'


def start(body: str) -> Any:
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(SandboxLimits()))
    host = SessionHost(registry=registry)
    return host.start_session(compile_document(HEAD + body + "</scxml>", registry=host.registry))


def test_a_condition_on_an_infinite_data_value_takes_the_same_transition_either_way() -> None:
    """Divergence, end to end: ``<data id="limit">Infinity</data>``, ``cond="3 < limit"``: answered
    here it is true (target "under"); the same test written ``(3 < limit) && In('s')`` (which the
    context answers) is false (target "over"), the context holding null."""
    targets = []
    for cond in ["3 &lt; limit", "(3 &lt; limit) &amp;&amp; In('s')"]:
        s = start(f"""<datamodel><data id="limit">Infinity</data></datamodel><state id="s">
          <transition event="go" cond="{cond}" target="under"/><transition event="go" target="over"/>
        </state><final id="under"/><final id="over"/>""")
        s.send("go")
        targets.append(s.final_state)
    assert targets[0] == targets[1], targets


# ------------------------------------------------------------------ representation of known values
def test_an_integral_float_known_value_comes_out_as_the_context_gives_it() -> None:
    """Divergence (type): known ``w = 2.0`` (``<data id="w">2.0</data>``): local ``w || 0`` gives
    float 2.0, the context int 2 (``codec.from_js``: one number type)."""
    assert_same({"w": 2.0}, None, "w || 0")


@pytest.mark.parametrize("value", [2.0, 3e9])
def test_an_integral_float_known_value_read_by_its_name_comes_out_as_the_context_gives_it(value: float) -> None:
    """Divergence (type), in ``EcmaData.evaluate``'s known-name path: known ``w = 3e9``: ``w``
    gives float 3000000000.0 without a context, the context int 3000000000."""
    code = KIND.compile_expr("w", 1, 1)
    mine = session({"w": value}).evaluate(code)
    code.code.name = None
    assert typed(mine) == typed(session({"w": value}).evaluate(code))


def test_a_minus_zero_known_value_comes_out_as_the_context_gives_it() -> None:
    """Divergence (type): known ``z = -0.0`` (``<data id="z">-0.0</data>``): local ``z && 1``
    gives float -0.0, the context the tagged -0 (a ``Foreign``)."""
    assert_same({"z": -0.0}, None, "z && 1")


def test_an_integral_float_beyond_2_53_inside_an_event_object_has_the_contexts_type() -> None:
    """Divergence (type): ``_event.data.o`` with ``o = {"v": 1e19}``: local gives ``{"v": 1e19}``
    (float), the context ``{"v": 10000000000000000000}`` (int: JSON.stringify writes it whole)."""
    assert_same({}, {"o": {"v": 1e19}}, "_event.data.o")


def test_an_event_object_keeps_the_contexts_key_order() -> None:
    """Divergence (order): ``_event.data.o`` with ``o = {"b": 1, "2": 2, "1": 3}``: local keeps the
    Python order (b, 2, 1), the context gives JavaScript's (integer keys first, ascending: 1, 2, b),
    which is what a <log>, a <send> or a for-in of the context's object shows."""
    data = {"o": {"b": 1, "2": 2, "1": 3}}
    mine = local_answer(session({}, data), "_event.data.o")
    theirs = context_answer(session({}, data), "_event.data.o")
    assert list(mine.items()) == list(theirs.items())


# ------------------------------------------------------------------ values the context cannot hold
@pytest.mark.parametrize("text", ["_event.data.s === 'a'", "_event.data.s + 1"])
def test_a_lone_surrogate_in_the_event_is_not_answered_here(text: str) -> None:
    """Divergence: ``_event.data.s`` with ``s = "\\ud800"`` (JSON "\\ud800" parses to it): local
    answers (false, "\\ud8001"), the context cannot be given the event and fails (error.execution)."""
    with pytest.raises(ExecutionError):
        context_answer(session({}, {"s": "\ud800"}), text)
    with pytest.raises(ExecutionError):  # declined here, so the session fails as the context does
        local_answer(session({}, {"s": "\ud800"}), text)


def test_a_lone_surrogate_in_a_known_value_is_not_answered_here() -> None:
    """Divergence: known ``s = "\\ud800"``: local ``s + 1`` gives "\\ud8001", the context cannot
    load the variable and fails (error.execution)."""
    with pytest.raises(ExecutionError):
        context_answer(session({"s": "\ud800"}), "s + 1")
    with pytest.raises(ExecutionError):  # declined here, so the session fails as the context does
        local_answer(session({"s": "\ud800"}), "s + 1")


# ------------------------------------------------------------------ stale values after a mutation
@pytest.mark.parametrize("op", [">>=", "<<=", ">>>="])
def test_a_shift_assignment_changes_what_a_later_expression_reads(op: str) -> None:
    """Divergence: after ``x >>= 1`` (``<<=``, ``>>>=``) ran in the context, local ``x + 0`` still
    gives the known 8: ``code.MUTATES`` does not see these as assignments (the ``=`` follows
    ``>``/``<``), so the expression is taken as pure and ``_known`` is kept."""
    kind = EcmaScriptDataModel(SandboxLimits())
    dm = session({"x": 8}, kind=kind)
    dm.evaluate(kind.compile_expr(f"x {op} 1", 1, 1))
    assert local_answer(dm, "x + 0", kind) == context_answer(dm, "x + 0", kind)


def test_a_shift_assignment_to_an_event_field_changes_what_a_later_expression_reads() -> None:
    """Divergence: after ``_event.data.t.x <<= 2`` ran in the context, local ``_event.data.t.x + 0``
    gives 8 (the event as Python holds it), the context 32: ``_event_changed`` is not set."""
    kind = EcmaScriptDataModel(SandboxLimits())
    dm = session({}, {"t": {"x": 8}}, kind=kind)
    dm.evaluate(kind.compile_expr("_event.data.t.x <<= 2", 1, 1))
    text = "_event.data.t.x + 0"
    assert local_answer(dm, text, kind) == context_answer(dm, text, kind)


@pytest.mark.parametrize("call", ["inc?.()", "inc``", "inc/**/()"])
def test_a_call_the_analysis_does_not_see_changes_what_a_later_expression_reads(call: str) -> None:
    """Divergence: a script defines ``inc()`` (``x = 99``); after a snapshot (``_known`` learned
    again, x = 1) the expression ``inc?.()`` (a tagged template ``inc``, or ``inc/**/()``) runs in
    the context, and local ``x + 0`` still gives 1, the context 99: ``code.CALL`` does not see these
    calls, so the expression is taken as pure and ``_known`` is kept."""
    kind = EcmaScriptDataModel(SandboxLimits())
    dm = session({"x": 1}, kind=kind)
    dm.execute(kind.compile_script("function inc() { x = 99; return 0; }", 1, 1))
    dm.variables()  # the snapshot after the macrostep
    dm.evaluate(kind.compile_expr(call, 1, 1))
    assert local_answer(dm, "x + 0", kind) == context_answer(dm, "x + 0", kind)


# ------------------------------------------------------------------ outside the subset
@pytest.mark.parametrize("text", [
    "f(1)", "x = 1", "x += 1", "x++", "--x", "'a' in o", "typeof x", "void 0", "`a${x}`", "(1, 2)",
    "x ? 1 : 2", "x ?? 1", "x?.y", "o[0]", "o['k']", "x.y", "new X", "delete x", "this", "NaN",
    "Infinity", "In('s')", "_event", "_event.data.list[0]", "1e3", "0x10", "1_000", ".5", "5.", "1n",
    "x & 1", "x | 1", "x ^ 1", "~x", "x << 1", "+x", "x instanceof Object", "[1]", "({})", "/a/",
    "x /* c */ + 1", "'a\\n'", "0.1234567890123456", "1234567890123456",
])
def test_what_is_outside_the_subset_is_not_compiled_here(text: str) -> None:
    code = KIND.compile_expr(text, 1, 1)
    assert code.code is None or code.code.local is None, text


# ------------------------------------------------------------------ differential, over the grammar
NUMBERS: list[Any] = [
    0, 1, -1, 2, 7, -3, 10, 2**31 - 1, 2**31, -(2**31), 2**32, 2**53 - 1, -(2**53 - 1), 2**53, 2**53 + 1, 10**21,
    0.5, -0.5, 2.5, 0.1, 0.2, 0.30000000000000004, 1e21, 1e20, 5e-324, 1.7976931348623157e308, 3e9, 2.0,
    -0.0, math.inf, -math.inf, math.nan,
]
STRINGS: list[Any] = [
    "", " ", "0", "1", " 1 ", "10", "9", "0x10", "1e3", "-0", "abc", "ABC", "true", "null", "undefined",
    "\U0001F600", "a\U0001F600", "\uffff", "\u00e9", "e\u0301", "NaN", "Infinity", "a\0b",
]
OTHERS: list[Any] = [True, False, None, NO_VALUE]
OBJECTS: list[Any] = [{}, [], {"k": 1}, {"a": {"b": [1, 2.0]}}, [1, "1"], {"v": 1e19}, {"__proto__": 1},
                      {"length": 3}, {"b": 1, "2": 2, "1": 3}]
NUMBER_LITERALS = ["0", "1", "2", "3", "7", "10", "53", "0.5", "2.5", "0.1", "0.2", "999999999999999",
                   "123456789012345.5", "0.000000000000001"]
STRING_LITERALS = ["''", "' '", "'1'", "'10'", "'9'", "'abc'", "'ABC'", "\"x\"", "'\U0001F600'", "'\u00e9'"]
OTHER_LITERALS = ["true", "false", "null", "undefined"]
# A family of values and literals per example: operands of one type meet often (the part this
# side answers), and the mixed family keeps the coercions in play.
FAMILIES: dict[str, tuple[list[Any], list[str]]] = {
    "number": (NUMBERS + OTHERS[:2], NUMBER_LITERALS + OTHER_LITERALS[:2]),
    "string": (STRINGS + NUMBERS[:8], STRING_LITERALS + NUMBER_LITERALS[:4]),
    "mixed": (NUMBERS + STRINGS + OTHERS, NUMBER_LITERALS + STRING_LITERALS + OTHER_LITERALS),
}
NAMES = ["v0", "v1", "v2", "v3"]
FIELDS = ["d0", "d1", "d2", "length", "constructor", "toString", "__proto__", "valueOf"]
PATHS = ["_event.data.o.k", "_event.data.o.v", "_event.data.o", "_event.data", "_event.name", "_event.data.missing"]
BINARY = ["===", "!==", "==", "!=", "+", "-", "*", "/", "%", "**", "<", "<=", ">", ">=", "&&", "||"]


@st.composite
def operand(draw: st.DrawFn, literals: list[str]) -> str:
    """A leaf (mostly a known variable, a literal or a field of the event's data), maybe under
    ``!`` and ``-`` (never written ``--``, a decrement)."""
    which = draw(st.integers(0, 9))
    pool = NAMES if which < 4 else literals if which < 7 else FIELDS[:3] if which < 9 else FIELDS[3:] + PATHS
    text = draw(st.sampled_from(pool))
    if pool is FIELDS[:3] or (pool is not NAMES and pool is not literals and not text.startswith("_event")):
        text = f"_event.data.{text}"
    if draw(st.integers(0, 3)) == 0:
        for prefix in draw(st.lists(st.sampled_from(["!", "-", "-"]), min_size=1, max_size=2)):
            text = f"{prefix}{' ' if prefix == '-' and text.startswith('-') else ''}{text}"
    return text


@st.composite
def expression(draw: st.DrawFn, literals: list[str], depth: int = 0) -> str:
    """Leaves joined by binary operators, grouped at random, parenthesised or left to the
    precedence and associativity rules."""
    if depth >= 2 or draw(st.integers(0, 2)) == 0:
        return draw(operand(literals))
    left = draw(expression(literals, depth + 1))
    right = draw(expression(literals, depth + 1))
    text = f"{left} {draw(st.sampled_from(BINARY))} {right}"
    if draw(st.booleans()):
        text = f"({text})"
        if draw(st.integers(0, 3)) == 0:
            text = f"{draw(st.sampled_from(['!', '-']))}{text}"
    return text


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(expression, the session's known values, _event.data)``."""
    values, literals = FAMILIES[draw(st.sampled_from(sorted(FAMILIES)))]
    rnd = draw(st.randoms(use_true_random=False))  # every value as likely as 0 (hypothesis favours the first)
    known = {name: rnd.choice(values) for name in NAMES}
    data = {f: rnd.choice(values) for f in FIELDS[:3]}
    for f in FIELDS[3:]:
        if rnd.random() < 0.25:
            data[f] = rnd.choice(values)
    data["o"] = rnd.choice(OBJECTS) if rnd.random() < 0.5 else {"k": rnd.choice(values), "v": rnd.choice(values)}
    return draw(expression(literals)), known, {k: v for k, v in data.items() if v is not NO_VALUE}


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_generated_expressions_answered_here_are_the_contexts(case: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    """What a session answers without building a context (a literal, a known variable by its
    name, or ``local``: value, type, key order, and the truth a condition takes) is what the
    context answers."""
    text, values, data = case
    code = KIND.compile_expr(text, 1, 1)
    if code.error is not None:
        return  # not JavaScript (-a ** b)
    built = KIND.pool.built
    here = session(values, data)
    try:
        mine = here.evaluate(code)
        truth = here.test(code)
    except ExecutionError:
        if KIND.pool.built == built:
            raise
        return  # the context answered, with an error ({valueOf: 1} == 1: TypeError)
    if KIND.pool.built != built:
        return  # the context answered
    there = KIND.compile_expr(text, 1, 1)
    there.code.local = there.code.name = there.code.literal = None
    theirs_session = session(values, data)
    theirs = theirs_session.evaluate(there)
    assert typed(mine) == typed(theirs), f"{text}: here {mine!r}, context {theirs!r}"
    if isinstance(mine, dict):
        assert list(mine) == list(theirs), f"{text}: key order"
    assert truth is theirs_session.test(there), text
