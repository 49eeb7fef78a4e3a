"""ECMAScript types and conversions of the values this side holds, where Python gives exactly
what a JavaScript context gives; ``NotHere`` wherever it might not.

Shared by the expressions answered without a context (``local.py``) and the built-ins answered
the same way (``builtins.py``).
"""

from __future__ import annotations

import math
from typing import Any

from ..datamodel import Foreign
from .codec import JsDict, JsList

MAX_SAFE_INT = 2**53
UNDEFINED = Foreign({"$t": "u"})


class NotHere(Exception):
    """The context must evaluate this expression (this side is not certain of the answer)."""


def js_type(v: Any) -> str:
    """The ECMAScript type of a value held here, or raise ``NotHere``."""
    t = type(v)
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if t is int or t is float:
        return "number"
    if v is None:
        return "null"
    if t is Foreign and v.form == UNDEFINED.form:
        return "undefined"
    if t is JsDict or t is JsList:
        return "object"
    raise NotHere


def to_text(v: Any) -> str:
    """ToString of a primitive, where Python writes it the same; else ``NotHere``."""
    kind = js_type(v)
    if kind == "string":
        return v
    if kind == "boolean":
        return "true" if v else "false"
    if kind == "null":
        return "null"
    if kind == "undefined":
        return "undefined"
    if kind == "number":
        if type(v) is int and -MAX_SAFE_INT < v < MAX_SAFE_INT:
            return str(v)
        if type(v) is float and math.isfinite(v) and v != 0:
            return number_text(v)
    raise NotHere  # NaN, the infinities, -0 (held tagged); objects have their own toString


def number_text(x: float) -> str:
    """Number::toString of a finite, non-zero double: the shortest digits that give ``x`` back
    (Python's ``repr`` finds the same ones), written out as ECMAScript writes them."""
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    n = len(whole) + int(exponent or 0)  # the point is after the first n digits
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = (digits[0] + ("." + digits[1:] if k > 1 else "")) + ("e+" if e >= 0 else "e-") + str(abs(e))
    return "-" + text if x < 0 else text


def as_number(v: float) -> Any:
    """A number as the context hands it out: integral values as ``int``; ``NotHere`` for NaN,
    the infinities, -0 and integers past 2**53 (the context holds those otherwise)."""
    if type(v) is float:
        if v != v or v in (float("inf"), float("-inf")):
            raise NotHere
        if v.is_integer():
            if v == 0 and str(v)[0] == "-":
                raise NotHere  # -0
            if -MAX_SAFE_INT < v < MAX_SAFE_INT:
                return int(v)
    elif not -MAX_SAFE_INT < v < MAX_SAFE_INT:
        raise NotHere
    return v


def both_numbers(a: Any, b: Any) -> tuple[Any, Any]:
    if js_type(a) != "number" or js_type(b) != "number":
        raise NotHere  # the context converts
    return a, b


def power(a: Any, b: Any) -> Any:
    """``a ** b`` (and ``Math.pow``) for small integers only."""
    a, b = both_numbers(a, b)
    if type(a) is not int or type(b) is not int or b < 0 or (abs(a) > 1 and b > 53):
        raise NotHere  # fractions and rounding are the context's (and no huge integers here)
    return as_number(a ** b)
