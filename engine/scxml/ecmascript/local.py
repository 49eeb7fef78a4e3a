"""Expressions this side answers without a JavaScript context, exactly as the context would.

A context costs a QuickJS runtime, the prelude compiled, the variables loaded and a compiled
function per expression: most of a callback's datamodel time. Yet flows are mostly written in a
tiny part of the language: a variable, a field of ``_event.data``, a literal, and ``===``,
``==``, ``&&``, ``||``, ``!``, arithmetic and ``<`` (and their kin) between them, calls of the
pure built-ins (``Date.now()``, ``Math.floor(x)``: ``builtins.py``) and ``.length``.
``compile_local`` turns an expression of that part into a Python function of the session's
``Scope``; anything else gives None, and the context evaluates it.

Exactness first: a function raises ``NotHere`` whenever its operands are not values whose
JavaScript behaviour is certain here (a variable whose value this side does not know, an object
compared, a float turned into text, a string with characters outside the BMP compared, a field
that is missing, a value that is not plain JSON): the context then evaluates the expression as it
always did. Objects read from ``_event.data`` come out as copies tagged with the event and path
they came from (``EventObject``), so that the datamodel can give the context the event's own
object wherever sharing could be seen.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Protocol

from ..datamodel import Foreign
from ..events import AttrDict
from .builtins import CALLS, MATH_CONSTANTS, length
from .codec import JsDict, JsList
from .values import MAX_SAFE_INT, UNDEFINED, NotHere, as_number, both_numbers, js_type, power, to_text

__all__ = ["EVENT", "UNDEFINED", "Local", "NotHere", "Scope", "compile_local", "plain_copy", "truthy"]

EVENT = "event"  # the first item of an EventObject's ``ref``


class Scope(Protocol):
    """What a compiled expression reads: the session's known variables and its event."""

    def known_value(self, name: str) -> Any:
        """A variable's value when this side knows it (a primitive); raises ``NotHere``."""

    def event_field(self, path: tuple[str, ...]) -> Any:
        """``_event`` then ``path`` (``("data", "vixn_id")``); raises ``NotHere``."""

    def builtin(self, name: str) -> None:
        """Raises ``NotHere`` unless the global ``name`` (``Math``) is surely the built-in the
        context would use now: not a variable of the flow, not changed by code in the context."""


Local = Callable[[Scope], Any]

# ------------------------------------------------------------------ values
_FALSY_NUMBERS = frozenset({"-0", "NaN"})


def truthy(v: Any) -> bool:
    """ToBoolean."""
    if type(v) is Foreign and isinstance(v.form, dict) and v.form.get("$t") == "n":
        return v.form.get("v") not in _FALSY_NUMBERS  # -0, NaN, Infinity as the context tags them
    kind = js_type(v)
    if kind == "object":
        return True
    if kind == "number":
        return v == v and v != 0
    if kind == "undefined":
        return False
    return bool(v)


def _strict_equal(a: Any, b: Any) -> bool:
    ka, kb = js_type(a), js_type(b)
    if ka == "object" or kb == "object":
        raise NotHere  # identity: the context knows which objects are the same
    return ka == kb and (ka in ("null", "undefined") or a == b)


def _loose_equal(a: Any, b: Any) -> bool:
    """``==`` where it is ``===`` (operands of one type) or null/undefined; else ``NotHere``."""
    ka, kb = js_type(a), js_type(b)
    if ka == "object" or kb == "object":
        raise NotHere
    if ka == kb:
        return ka in ("null", "undefined") or a == b
    if {ka, kb} == {"null", "undefined"}:
        return True
    if ka in ("null", "undefined") or kb in ("null", "undefined"):
        return False  # null and undefined equal nothing else
    raise NotHere  # "1" == 1, true == 1: the coercions are the context's


def _plus(a: Any, b: Any) -> Any:
    ka, kb = js_type(a), js_type(b)
    if ka == "number" and kb == "number":
        return as_number(float(a) + float(b) if type(a) is float or type(b) is float else a + b)
    if ka == "string" or kb == "string":
        return to_text(a) + to_text(b)
    raise NotHere


def _minus(a: Any, b: Any) -> Any:
    if js_type(a) != "number" or js_type(b) != "number":
        raise NotHere  # "5" - 1: the context converts
    return as_number(float(a) - float(b) if type(a) is float or type(b) is float else a - b)


def _times(a: Any, b: Any) -> Any:
    a, b = both_numbers(a, b)
    if type(a) is float or type(b) is float:
        return as_number(float(a) * float(b))
    if (a < 0 or b < 0) and (a == 0 or b == 0):
        raise NotHere  # 0 * -3 is -0
    return as_number(a * b)


def _divide(a: Any, b: Any) -> Any:
    a, b = both_numbers(a, b)
    if b == 0:
        raise NotHere  # Infinity, NaN
    return as_number(float(a) / float(b))  # both exact as doubles, so one correctly rounded quotient


def _remainder(a: Any, b: Any) -> Any:
    a, b = both_numbers(a, b)
    if b == 0:
        raise NotHere  # NaN
    return as_number(math.fmod(float(a), float(b)))  # JavaScript's %: the sign of the dividend


def _negate(v: Any) -> Any:
    if js_type(v) != "number" or v == 0:
        raise NotHere  # -0, and -"1"
    return as_number(-v)


def _bmp(s: str) -> bool:
    return not s or max(s) < "\U00010000"


_TO_NUMBER = {"null": lambda v: 0, "boolean": int, "number": lambda v: v, "undefined": lambda v: math.nan}


def _compare(a: Any, b: Any) -> tuple[Any, Any]:
    ka, kb = js_type(a), js_type(b)
    if ka == "string" and kb == "string":
        if _bmp(a) and _bmp(b):  # UTF-16 order = code point order
            return a, b
        raise NotHere
    if ka in _TO_NUMBER and kb in _TO_NUMBER:  # ToNumber of these is plain (NaN compares false)
        return _TO_NUMBER[ka](a), _TO_NUMBER[kb](b)
    raise NotHere  # strings against numbers, objects: the context converts


def _less(a: Any, b: Any) -> bool:
    a, b = _compare(a, b)
    return a < b


def _less_equal(a: Any, b: Any) -> bool:
    a, b = _compare(a, b)
    return a <= b


def _greater(a: Any, b: Any) -> bool:
    a, b = _compare(a, b)
    return a > b


def _greater_equal(a: Any, b: Any) -> bool:
    a, b = _compare(a, b)
    return a >= b


_SURROGATE = re.compile("[\ud800-\udfff]")
# A key JavaScript keeps first, in ascending order, whatever the order it was written in.
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")  # ASCII digits: \d takes others ("1\u0661")


def _text_value(v: str) -> str:
    if not v.isascii() and _SURROGATE.search(v):
        raise NotHere  # a lone surrogate: the context cannot be given it
    return v


def _key(k: Any) -> str:
    if type(k) is not str or k == "$t":
        raise NotHere  # "$t" is the codec's
    return _text_value(k)


def _in_order(d: dict[str, Any]) -> Any:
    """``d``'s items in the context's order: array-index keys first, ascending, then the others
    as written."""
    items = d.items()
    if not any(_ARRAY_INDEX.fullmatch(k) for k in d):
        return items
    indexed = sorted((k for k in d if _ARRAY_INDEX.fullmatch(k) and int(k) < 2**32 - 1), key=int)
    rest = [k for k in d if k not in set(indexed)]
    return [(k, d[k]) for k in indexed + rest]


def plain_copy(v: Any, path: tuple[str, ...] = (), event: Any = None) -> Any:
    """``v`` as it comes back out of the context: a copy, integral floats as ``int``;
    ``NotHere`` for what is not plain JSON or would come out otherwise. Objects are
    ``JsDict``/``JsList`` whose ``ref`` names the event and path they were read from."""
    t = type(v)
    if t is str:
        return _text_value(v)
    if t is bool or v is None:
        return v
    if t is int or t is float:
        return as_number(v)
    if t is dict or t is AttrDict:
        out: Any = JsDict()
        for k, x in _in_order(v):
            out[_key(k)] = _inner(x)
    elif t is list:
        out = JsList(_inner(x) for x in v)
    else:
        raise NotHere
    out.ref = (EVENT, event, path)
    return out


def _inner(v: Any) -> Any:
    """A part of an object: it comes out of the context as JSON text (JSON.stringify)."""
    t = type(v)
    if t is str:
        return _text_value(v)
    if t is bool or v is None:
        return v
    if t is float and v.is_integer() and not -MAX_SAFE_INT < v < MAX_SAFE_INT:
        return int(v) if abs(v) < 1e21 else v  # JSON.stringify writes it whole below 1e21
    if t is int or t is float:
        return as_number(v)
    if t is dict or t is AttrDict:
        out = {}
        for k, x in _in_order(v):
            out[_key(k)] = _inner(x)
        return out
    if t is list:
        return [_inner(x) for x in v]
    raise NotHere


# ------------------------------------------------------------------ parsing
_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'[^'\\\n\r\u2028\u2029]*'|"[^"\\\n\r\u2028\u2029]*")
  | (?P<num>(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?(?![\w$.]))
  | (?P<name>[A-Za-z_$][\w$]*)
  | (?P<op>===|!==|==|!=|&&|\|\||<=|>=|\+\+|--|\*\*|[!()<>+\-*/%.,])
)""", re.X)
_SPACE = re.compile(r"\s*")
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None, "undefined": UNDEFINED}
# Words that are not variables: keywords, and globals whose value is not a flow's variable.
_NOT_VARIABLES = frozenset({"this", "new", "typeof", "void", "delete", "in", "instanceof", "function",
                            "NaN", "Infinity", "In", "_sessionid", "_name", "_ioprocessors", "_x"})


def _tokens(text: str) -> list[tuple[str, str]] | None:
    out: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= end:
            return out
        m = _TOKEN.match(text, pos)
        if m is None:
            return None
        kind = m.lastgroup
        out.append((kind, m.group(kind)))  # type: ignore[arg-type]
        pos = m.end()


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise SyntaxError
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, op: str) -> None:
        if self.take() != ("op", op):
            raise SyntaxError

    def binary(self, ops: dict[str, Callable[[Any, Any], Any]], lower: Callable[[], Local]) -> Local:
        left = lower()
        while self.peek() in ops and self.tokens[self.at][0] == "op":
            fn = ops[self.take()[1]]
            right = lower()
            left = _apply(fn, left, right)
        return left

    def logical_or(self) -> Local:
        left = self.logical_and()
        while self.peek() == "||":
            self.take()
            left = _or(left, self.logical_and())
        return left

    def logical_and(self) -> Local:
        left = self.equality()
        while self.peek() == "&&":
            self.take()
            left = _and(left, self.equality())
        return left

    def equality(self) -> Local:
        return self.binary(_EQUALITY, self.relational)

    def relational(self) -> Local:
        return self.binary(_RELATIONAL, self.additive)

    def additive(self) -> Local:
        return self.binary(_ADDITIVE, self.multiplicative)

    def multiplicative(self) -> Local:
        return self.binary(_MULTIPLICATIVE, self.exponent)

    def exponent(self) -> Local:
        base = self.unary()
        if self.peek() == "**" and self.tokens[self.at][0] == "op":
            self.take()
            return _apply(power, base, self.exponent())  # right to left
        return base

    def unary(self) -> Local:
        if self.peek() == "!" and self.tokens[self.at][0] == "op":
            self.take()
            inner = self.unary()
            return lambda scope: not truthy(inner(scope))
        if self.peek() == "-" and self.tokens[self.at][0] == "op":
            self.take()
            negated = self.unary()
            return lambda scope: _negate(negated(scope))
        return self.postfix()

    def postfix(self) -> Local:
        """An operand, then ``.length`` (of a literal, a call, an expression in parentheses)."""
        value = self.primary()
        while self.peek() == "." and self.tokens[self.at][0] == "op":
            self.take()
            if self.take() != ("name", "length"):
                raise SyntaxError
            value = _length_of(value)
        return value

    def primary(self) -> Local:
        kind, text = self.take()
        if kind == "str":
            value = text[1:-1]
            return lambda scope: value
        if kind == "num":
            number = float(text)
            value = int(number) if number.is_integer() else number
            return lambda scope: value
        if kind == "op" and text == "(":
            inner = self.logical_or()
            self.expect(")")
            return inner
        if kind != "name":
            raise SyntaxError
        if text in _LITERALS:
            literal = _LITERALS[text]
            return lambda scope: literal
        if text in _NOT_VARIABLES:
            raise SyntaxError
        path: list[str] = []
        while self.peek() == "." and self.tokens[self.at][0] == "op":
            self.take()
            member_kind, member = self.take()
            if member_kind != "name":
                raise SyntaxError
            path.append(member)
        if self.peek() == "(" and self.tokens[self.at][0] == "op":
            return self.call(text, path)
        if text == "_event":
            if not path:
                raise SyntaxError
            fields = tuple(path)
            if len(fields) > 1 and fields[-1] == "length":
                return _event_member(fields)
            return lambda scope: scope.event_field(fields)
        if text == "Math" and len(path) == 1 and path[0] in MATH_CONSTANTS:
            constant = MATH_CONSTANTS[path[0]]
            return _call("Math", lambda: constant, [])
        if path == ["length"]:
            return lambda scope: length(scope.known_value(text))  # a string's own, unchangeable
        if path:
            raise SyntaxError  # members of the flow's own values: the context knows their prototypes
        return lambda scope: scope.known_value(text)

    def call(self, name: str, path: list[str]) -> Local:
        """A call of one of the pure built-ins (``builtins.CALLS``) with the arguments it answers."""
        if len(path) > 1:
            raise SyntaxError
        entry = CALLS.get((name, path[0] if path else ""))
        if entry is None:
            raise SyntaxError
        self.expect("(")
        args: list[Local] = []
        if self.peek() != ")":
            args.append(self.logical_or())
            while self.peek() == "," and self.tokens[self.at][0] == "op":
                self.take()
                args.append(self.logical_or())
        self.expect(")")
        fn, counts = entry
        if len(args) not in counts:
            raise SyntaxError  # Math.floor() is NaN; extra arguments: the context's
        return _call(name, fn, args)


def _call(root: str, fn: Callable[..., Any], args: list[Local]) -> Local:
    def call(scope: Scope) -> Any:
        scope.builtin(root)  # the flow's own Math, or a context whose Math was changed: NotHere
        return fn(*[arg(scope) for arg in args])
    return call


def _event_member(fields: tuple[str, ...]) -> Local:
    """``_event.data.x.length``: x's own property when x is an object, else its length."""
    def member(scope: Scope) -> Any:
        try:
            return scope.event_field(fields)
        except NotHere:
            return length(scope.event_field(fields[:-1]))
    return member


def _length_of(value: Local) -> Local:
    return lambda scope: length(value(scope))


def _apply(fn: Callable[[Any, Any], Any], left: Local, right: Local) -> Local:
    return lambda scope: fn(left(scope), right(scope))


def _and(left: Local, right: Local) -> Local:
    def both(scope: Scope) -> Any:
        a = left(scope)
        return right(scope) if truthy(a) else a
    return both


def _or(left: Local, right: Local) -> Local:
    def either(scope: Scope) -> Any:
        a = left(scope)
        return a if truthy(a) else right(scope)
    return either


_EQUALITY: dict[str, Callable[[Any, Any], Any]] = {
    "===": _strict_equal, "!==": lambda a, b: not _strict_equal(a, b),
    "==": _loose_equal, "!=": lambda a, b: not _loose_equal(a, b)}
_ADDITIVE: dict[str, Callable[[Any, Any], Any]] = {"+": _plus, "-": _minus}
_MULTIPLICATIVE: dict[str, Callable[[Any, Any], Any]] = {"*": _times, "/": _divide, "%": _remainder}
_RELATIONAL: dict[str, Callable[[Any, Any], Any]] = {
    "<": _less, "<=": _less_equal, ">": _greater, ">=": _greater_equal}


def compile_local(text: str) -> Local | None:
    """A function answering ``text`` here, or None when it is outside the part this side knows."""
    tokens = _tokens(text)
    if not tokens:
        return None
    parser = _Parser(tokens)
    try:
        fn = parser.logical_or()
    except (SyntaxError, IndexError, ValueError, RecursionError):
        return None  # RecursionError: nested deeper than this parser walks (the context parses it)
    if parser.at != len(tokens):
        return None
    return fn
