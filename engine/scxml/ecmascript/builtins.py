"""The pure built-ins a flow calls all the time (``Date.now()``, ``Math.floor(x)``, ``String(n)``,
``parseInt(s)``, ``s.length``), answered in Python exactly as a JavaScript context answers them.

A single ``Date.now()`` in a flow otherwise builds a QuickJS context (~0.8 ms) for every event
that runs it. Each answer here is given only where it is provably the context's: the arguments
are finite numbers (no coercion), or strings of a shape whose conversion is exact on both sides;
anything else raises ``NotHere`` and the context answers. Whether the global (``Math``, ``Date``,
...) is still the built-in is the session's to say (``Scope.builtin``).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

from .codec import JsList
from .values import MAX_SAFE_INT, NotHere, as_number, js_type, power, to_text

# The globals whose members or calls are answered here.
GLOBALS = frozenset({"Math", "Date", "String", "Number", "parseInt", "parseFloat"})

# Math's constants: the doubles ECMAScript specifies (the nearest to each value, as Python's).
MATH_CONSTANTS: dict[str, float] = {
    "PI": math.pi, "E": math.e, "LN2": 0.6931471805599453, "LN10": 2.302585092994046,
    "LOG2E": 1.4426950408889634, "LOG10E": 0.4342944819032518, "SQRT2": 1.4142135623730951,
    "SQRT1_2": 0.7071067811865476,
}


def _finite(v: Any) -> int | float:
    """An argument that is already a finite number (a safe integer or a finite double)."""
    t = type(v)
    if t is int:
        if not -MAX_SAFE_INT < v < MAX_SAFE_INT:
            raise NotHere
        return v
    if t is float and math.isfinite(v):
        return v
    raise NotHere  # NaN, the infinities, and every coercion (ToNumber) are the context's


def _integral(v: Any, whole: Callable[[float], int]) -> Any:
    """floor/ceil/trunc: integral results, -0 declined (``as_number``)."""
    x = _finite(v)
    if type(x) is int:
        return x
    r = whole(x)
    if r == 0 and x < 0:
        raise NotHere  # Math.ceil(-0.5) and Math.trunc(-0.5) are -0
    return as_number(float(r))


def _round(v: Any) -> Any:
    """Math.round: the nearest integer, halves up (2.5 -> 3, -2.5 -> -2, -0.4 -> -0)."""
    x = _finite(v)
    if type(x) is int:
        return x
    r = math.floor(x)
    if x - r >= 0.5:  # exact: x and floor(x) are doubles of one binade, their difference is exact
        r += 1
    if r == 0 and x < 0:
        raise NotHere  # -0
    return as_number(float(r))


def _abs(v: Any) -> Any:
    return as_number(abs(_finite(v)))


def _sign(v: Any) -> Any:
    x = _finite(v)
    return 1 if x > 0 else -1 if x < 0 else 0  # x is never -0 here (values hold it tagged)


def _sqrt(v: Any) -> Any:
    x = _finite(v)
    if x < 0:
        raise NotHere  # NaN
    return as_number(math.sqrt(x))  # correctly rounded on both sides (IEEE 754)


def _min(*args: Any) -> Any:
    if not args:
        raise NotHere  # Infinity
    return as_number(min(_finite(a) for a in args))


def _max(*args: Any) -> Any:
    if not args:
        raise NotHere  # -Infinity
    return as_number(max(_finite(a) for a in args))


def _now() -> int:
    """Date.now(): QuickJS reads the same wall clock (gettimeofday) and truncates to whole
    milliseconds."""
    return time.time_ns() // 1_000_000


# -- conversions of strings: only the shapes whose value is exact on both sides ----------------
# At most 15 digits, at most 15 after the point: the value is m / 10**k with m < 2**53 and 10**k
# exact, so one correctly rounded division, whatever the parser.
_DECIMAL = re.compile(r"[+-]?([0-9]{1,15})(?:\.([0-9]{1,15}))?")  # ASCII digits: \d and int() take others too
_LEADING_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_GOES_ON = frozenset("0123456789.eE")  # after a decimal: it may go on (1.5e3, 1.)


def _decimal(sign_digits: str, whole: str, fraction: str | None) -> Any:
    if len(whole.lstrip("0")) + len(fraction or "") > 15:
        raise NotHere
    value = float(sign_digits) if fraction is not None else int(sign_digits)
    if value == 0 and sign_digits.startswith("-"):
        raise NotHere  # -0
    return as_number(value)


def _to_number(v: Any) -> Any:
    """Number(x): numbers, booleans, null, and strings that are a plain decimal (or empty)."""
    kind = js_type(v)
    if kind == "number":
        return as_number(_finite(v))
    if kind == "boolean":
        return 1 if v else 0
    if kind == "null":
        return 0
    if kind == "string":
        if v == "":
            return 0
        m = _DECIMAL.fullmatch(v)
        if m is not None:
            return _decimal(v, m.group(1), m.group(2))
    raise NotHere  # undefined (NaN), objects, hex, exponents, whitespace, Infinity


def _string(v: Any) -> str:
    """String(x): the primitives ``to_text`` writes as the context does."""
    return to_text(v)


_LEADING_INTEGER = re.compile(r"[+-]?([0-9]+)")


def _parse_int(v: Any, *radix: Any) -> Any:
    """parseInt(s) and parseInt(s, 10): a leading decimal integer of at most 15 digits."""
    if radix and (type(radix[0]) is not int or radix[0] != 10):
        raise NotHere
    if type(v) is int:
        return as_number(_finite(v))  # its text is its digits
    if type(v) is not str:
        raise NotHere  # ToString of a float, an object: the context's
    start = _LEADING_SPACE.match(v).end()  # type: ignore[union-attr]
    m = _LEADING_INTEGER.match(v, start)
    if m is None:
        raise NotHere  # NaN, or whitespace this side does not trim
    digits = m.group(1)
    if not radix and digits == "0" and v[m.end():m.end() + 1] in ("x", "X"):
        raise NotHere  # 0x...: hexadecimal without a radix (with radix 10 it is 0)
    if len(digits.lstrip("0")) > 15:
        raise NotHere
    value = int(m.group(0))
    if value == 0 and m.group(0).startswith("-"):
        raise NotHere  # -0
    return value


def _parse_float(v: Any) -> Any:
    """parseFloat(s): a leading plain decimal not followed by more of a number."""
    if type(v) is int:
        return as_number(_finite(v))
    if type(v) is not str:
        raise NotHere
    start = _LEADING_SPACE.match(v).end()  # type: ignore[union-attr]
    m = _DECIMAL.match(v, start)
    if m is None or v[m.end():m.end() + 1] in _NUMBER_GOES_ON:
        raise NotHere  # NaN, Infinity, .5, 1e3, 1., more digits than are exact here
    return _decimal(m.group(0), m.group(1), m.group(2))


def length(v: Any) -> int:
    """``.length`` of a string (UTF-16 code units) or an array."""
    t = type(v)
    if t is str:
        if v.isascii() or max(v) < "\U00010000":
            return len(v)
        return len(v) + sum(1 for c in v if c >= "\U00010000")  # a surrogate pair each
    if t is JsList:
        return len(v)
    raise NotHere  # numbers (undefined), objects (their own property), null (TypeError)


# (global, member or "") -> (function, the argument counts it answers)
CALLS: dict[tuple[str, str], tuple[Callable[..., Any], tuple[int, ...]]] = {
    ("Date", "now"): (_now, (0,)),
    ("Math", "floor"): (lambda v: _integral(v, math.floor), (1,)),
    ("Math", "ceil"): (lambda v: _integral(v, math.ceil), (1,)),
    ("Math", "trunc"): (lambda v: _integral(v, math.trunc), (1,)),
    ("Math", "round"): (_round, (1,)),
    ("Math", "abs"): (_abs, (1,)),
    ("Math", "sign"): (_sign, (1,)),
    ("Math", "sqrt"): (_sqrt, (1,)),
    ("Math", "pow"): (lambda a, b: power(_finite(a), _finite(b)), (2,)),
    ("Math", "min"): (_min, (1, 2, 3, 4, 5, 6, 7, 8)),
    ("Math", "max"): (_max, (1, 2, 3, 4, 5, 6, 7, 8)),
    ("String", ""): (_string, (1,)),
    ("Number", ""): (_to_number, (1,)),
    ("parseInt", ""): (_parse_int, (1, 2)),
    ("parseFloat", ""): (_parse_float, (1,)),
}
