"""Issue 15: the pure built-ins answered without a context (``ecmascript/builtins.py``: Date.now,
Math, String, Number, parseInt, parseFloat, .length) give exactly what the context gives, in value
and Python type, over generated arguments; and a flow that calls them builds no context."""

from __future__ import annotations

import math
import random
import struct
import time
from typing import Any

import pytest

from engine.scxml.datamodel import Foreign
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits
from engine.scxml.ecmascript.local import NotHere
from engine.scxml.events import Event

KIND = EcmaScriptDataModel(SandboxLimits())
MATH_ONE = ["floor", "ceil", "round", "trunc", "abs", "sign", "sqrt"]


def typed(v: Any) -> Any:
    """``v`` with its type, floats by ``repr`` (-0.0 is not 0.0), ``Foreign`` by its form."""
    if isinstance(v, float):
        return ("float", repr(v))
    if isinstance(v, Foreign):
        return ("Foreign", repr(v.form))
    return (type(v).__name__, v)


def session(values: dict[str, Any], data: Any = None) -> Any:
    dm = KIND.new_session({"_sessionid": "sid", "_name": "n"})
    for name, value in values.items():
        dm.declare(name, value)
    dm.set_event(Event("ev", data=data))
    return dm


def compare(values: dict[str, Any], data: Any, texts: list[str]) -> int:
    """Every answer given here equals the context's; returns how many were given here. The
    context's answers come from a session of their own (the same values), the local function
    taken away."""
    mine, theirs = session(values, data), session(values, data)
    answered = 0
    for text in texts:
        here = KIND.compile_expr(text, 1, 1)
        assert here.error is None, (text, here.error)
        assert here.code.local is not None, f"{text!r} is outside what is answered here"
        try:
            answer = here.code.local(mine)
        except NotHere:
            continue
        there = KIND.compile_expr(text, 1, 1)
        there.code.local = None
        assert typed(answer) == typed(theirs.evaluate(there)), text
        assert mine.test(here) is theirs.test(there), text
        answered += 1
    return answered


def random_double(rng: random.Random) -> float:
    """A finite double from its bits (every exponent), or a value near a rounding edge."""
    shape = rng.random()
    if shape < 0.4:
        while True:
            x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
            if math.isfinite(x) and x != 0:
                return x
    if shape < 0.7:  # halves and their neighbours: round's ties
        half = rng.randint(-10**6, 10**6) + 0.5
        return rng.choice([half, math.nextafter(half, math.inf), math.nextafter(half, -math.inf)])
    if shape < 0.85:
        return rng.uniform(-3, 3)
    return rng.choice([0.49999999999999994, -0.49999999999999994, 2.0**52 + 0.5, -(2.0**52) - 0.5, 2.0**53,
                       4503599627370495.5, -4503599627370495.5, 1e-300, -1e-300, 1.7976931348623157e308,
                       -1.7976931348623157e308, 5e-324, -5e-324, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5])


def test_math_on_generated_doubles_is_the_contexts() -> None:
    rng = random.Random(1501)
    answered = 0
    for _ in range(60):
        values = {f"x{i}": random_double(rng) for i in range(6)} | {"i": rng.randint(-10**9, 10**9)}
        texts = [f"Math.{fn}(x{i})" for fn in MATH_ONE for i in range(6)]
        texts += [f"Math.{fn}(i)" for fn in MATH_ONE]
        texts += ["Math.min(x0, x1)", "Math.max(x0, x1, x2)", "Math.min(x3, i, x4, x5)", "Math.max(i)",
                  "Math.pow(i, 2)", "Math.pow(2, 10)", "Math.pow(-3, 3)", "Math.round(x0) + Math.floor(x1)",
                  "Math.floor(x2 / 1000)", "Math.round(x3 * 100) / 100", "Math.abs(x4) >= 0",
                  "Math.max(Math.min(x0, 10), -10)", "Math.sqrt(Math.abs(x5))"]
        answered += compare(values, None, texts)
    assert answered > 60 * 40


def test_numbers_written_as_text_are_the_contexts() -> None:
    """Number::toString of doubles of every exponent (fixed and exponent forms, the 1e21 and 1e-7
    edges), through String(x) and string concatenation."""
    rng = random.Random(1504)
    answered = 0
    edges = [1e21, 9.999999999999999e20, 1e-7, 1e-6, 1.5e-7, 123e-20, 0.1, 2.0**60, 5e-324, 1.7976931348623157e308,
             1e20, 0.000001, -1e21, -1e-7, 4503599627370495.5, 1.0000000000000002, 0.30000000000000004]
    for round_ in range(80):
        values = {f"x{i}": random_double(rng) for i in range(6)}
        if round_ < len(edges):
            values["x0"] = edges[round_]
        texts = [f"String(x{i})" for i in range(6)] + [f"x{i} + ''" for i in range(6)]
        texts += ["'v=' + x0 + x1", "String(x2 / 3)", "String(x3).length", "(x4 + 'px').length"]
        answered += compare(values, None, texts)
    assert answered > 80 * 15


@pytest.mark.parametrize("name", ["PI", "E", "LN2", "LN10", "LOG2E", "LOG10E", "SQRT2", "SQRT1_2"])
def test_maths_constants_are_the_contexts_doubles(name: str) -> None:
    assert compare({}, None, [f"Math.{name}", f"Math.{name} * 2", f"Math.floor(Math.{name} * 1000)"]) == 3


def test_date_now_is_the_contexts_clock_in_whole_milliseconds() -> None:
    mine, theirs = session({}), session({})
    here = KIND.compile_expr("Date.now()", 1, 1)
    there = KIND.compile_expr("Date.now()", 1, 1)
    there.code.local = None
    for _ in range(200):
        before = here.code.local(mine)
        context = theirs.evaluate(there)
        after = here.code.local(mine)
        assert type(before) is type(context) is type(after) is int
        assert before <= context <= after <= time.time() * 1000 + 1
    assert compare({"t0": 1_700_000_000_000}, None, ["Date.now() - t0 > 0", "Date.now() / 1000 > 1000000000"]) == 2


STRING_PARTS = ["0", "1", "7", "9", "00", "12", "123456789012345", "1234567890123456", ".", ".5", "5.", "-", "+",
                "e", "E", "e3", "x", "X", "0x1A", "0b1", "0o7", " ", "\t", "\n", "\u00a0", "\ufeff", "\u2028", "\v",
                "Infinity", "-Infinity", "NaN", "px", "abc", "_", ",", "1_0", "\u0661", "1\u0661", "\U0001F600", ""]


def random_string(rng: random.Random) -> str:
    return "".join(rng.choice(STRING_PARTS) for _ in range(rng.randint(0, 4)))


def test_conversions_of_generated_strings_are_the_contexts() -> None:
    rng = random.Random(1502)
    answered = 0
    for _ in range(150):
        values = {f"s{i}": random_string(rng) for i in range(6)}
        texts = [f"{fn}(s{i})" for fn in ("Number", "parseInt", "parseFloat", "String") for i in range(6)]
        texts += [f"parseInt(s{i}, 10)" for i in range(6)] + [f"s{i}.length" for i in range(6)]
        texts += ["Number(s0) + Number(s1)", "parseInt(s2) * 2", "String(s3).length", "(s4 + s5).length"]
        answered += compare(values, None, texts)
    assert answered > 150 * 15


@pytest.mark.parametrize("value", [0, 7, -12, 2**53 - 1, -(2**53) + 1, 2.5, -0.75, 1e21, 1e-7, 0.1, 123.456, 3e9,
                                   True, False, None, "", "abc", "\U0001F600x", "0x10", " 42 "])
def test_conversions_of_each_kind_of_value_are_the_contexts(value: Any) -> None:
    texts = ["String(v)", "Number(v)", "parseInt(v)", "parseInt(v, 10)", "parseFloat(v)", "String(v).length",
             "Math.floor(v)", "Math.max(v, 1)", "Math.abs(v)"]
    compare({"v": value}, None, [*texts, *(t.replace("v", "_event.data.v") for t in texts)])
    compare({}, {"v": value}, [t.replace("v", "_event.data.v") for t in texts])


EVENT_DATA = {"s": "abc", "astral": "a\U0001F600b\U0001F601", "list": [1, "x", {"k": 2}], "empty": [], "n": 5,
              "o": {"length": 7}, "p": {"k": 1}, "big": 1e300, "neg": -2.5}


@pytest.mark.parametrize("text", [
    "_event.data.s.length", "_event.data.astral.length", "_event.data.list.length", "_event.data.empty.length",
    "_event.data.o.length", "_event.name.length", "'abc'.length", "''.length", "'\U0001F600'.length",
    "(_event.data.s + _event.data.astral).length", "String(_event.data.n).length", "s.length", "astral.length",
    "Math.floor(_event.data.big)", "Math.round(_event.data.neg)", "Math.max(_event.data.n, _event.data.neg)",
    "Math.sqrt(_event.data.n)", "Math.abs(_event.data.neg) === 2.5", "_event.data.list.length > 2",
])
def test_lengths_and_event_fields_are_the_contexts(text: str) -> None:
    assert compare({"s": "abcd", "astral": "\U0001F600\U0001F600!"}, EVENT_DATA, [text]) == 1


OPERANDS = ["x", "y", "i", "s", "n", "'12'", "2.5", "(-3)", "(0)", "_event.data.n", "_event.data.s", "_event.data.neg"]
CALLS = ["Math.floor({})", "Math.ceil({})", "Math.round({})", "Math.trunc({})", "Math.abs({})", "Math.sign({})",
         "Math.sqrt({})", "Math.min({}, {})", "Math.max({}, {}, {})", "Math.pow({}, {})", "String({})",
         "Number({})", "parseInt({})", "parseFloat({})", "String({}).length", "({}).length"]
OPERATORS = ["+", "-", "*", "/", "%", "<", ">=", "===", "!==", "&&", "||"]


def random_expression(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(OPERANDS)
    shape = rng.random()
    if shape < 0.5:
        call = rng.choice(CALLS)
        return call.format(*(random_expression(rng, depth - 1) for _ in range(call.count("{}"))))
    if shape < 0.6:
        return f"-({random_expression(rng, depth - 1)})"
    return f"({random_expression(rng, depth - 1)} {rng.choice(OPERATORS)} {random_expression(rng, depth - 1)})"


def test_random_nested_calls_answered_here_equal_the_contexts() -> None:
    rng = random.Random(1503)
    texts = [random_expression(rng, 3) for _ in range(3000)]
    compiled = [(t, KIND.compile_expr(t, 1, 1)) for t in texts]
    texts = [t for t, c in compiled if c.error is None and c.code.local is not None]  # not a bare name
    answered = compare({"x": 2.5, "y": -7.25, "i": 42, "s": "12px", "n": None}, {"n": 10, "s": "3.5", "neg": -0.5},
                       texts)
    assert answered > 800


def callback_like_flow() -> str:
    return """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">
      <datamodel><data id="t_entry" expr="0"/><data id="wait" expr="0"/><data id="tries" expr="0"/></datamodel>
      <state id="s">
        <onentry><assign location="t_entry" expr="Date.now() / 1000"/></onentry>
        <transition event="ewt" cond="Math.max(_event.data.ewt, 0) &gt; 10">
          <assign location="wait" expr="Math.round(_event.data.ewt / 60)"/>
          <assign location="tries" expr="tries + 1"/>
        </transition>
        <transition event="done" cond="String(tries).length === 1 &amp;&amp; Date.now() &gt;= t_entry" target="end"/>
      </state><final id="end"/></scxml>"""


def test_a_flow_calling_pure_built_ins_builds_no_context() -> None:
    from engine.scxml import SessionHost, compile_document, standard_registry

    registry = standard_registry()
    kind = EcmaScriptDataModel(SandboxLimits())
    registry.register_datamodel("ecmascript", lambda: kind)
    host = SessionHost(registry=registry)
    s = host.start_session(compile_document(callback_like_flow(), registry=host.registry))
    s.send("ewt", {"ewt": 125.5})
    s.send("done")
    assert s.final_state == "end"
    assert s.variables["wait"] == 2 and s.variables["tries"] == 1
    assert abs(s.variables["t_entry"] - time.time()) < 60
    assert kind.pool.built == 0
