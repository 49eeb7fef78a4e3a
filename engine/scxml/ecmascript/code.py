"""What the ecmascript datamodel compiles an expression, location or script into.

Compiling checks the syntax once per document; the function that evaluates an expression is
made once per live context (a JavaScript function object is bound to its context) from the
wrapper text kept here, then called directly, without parsing, on every later evaluation.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .local import Local, compile_local

# `In('id')` with a literal id; any other call (or a dynamic In) may reach the configuration or
# _event through a function, so the session pushes them before running it.
IN_LITERAL = re.compile(r"""\bIn\s*\(\s*(['"])([^'"\\]*)\1\s*\)""")
IN_ANY = re.compile(r"\bIn\s*\(")
# A call: name(, x)(, a[i](, a?.(; and whatever this cannot read through: a template (a tagged
# one calls its tag) and comments (name/**/()).
CALL = re.compile(r"[\w$\]\)]\s*\(|\?\.\s*\(|`|/\*|//")
# What may change a variable in an expression: an assignment (=, +=, <<=, >>>=, ...), ++/--,
# delete, new. (An = after < or > alone is a comparison, <= or >=; after << or >> a shift.)
MUTATES = re.compile(r"(?:<<|>>|[^=!<>])=(?!=)|^=|\+\+|--|\bdelete\b|\bnew\b")

NAME = re.compile(r"^[A-Za-z_$][\w$]*$")
# The variable a location starts with (``x`` of ``x.y[0]``).
LOCATION_ROOT = re.compile(r"\s*([A-Za-z_$][\w$]*)")
# Literals whose value this side knows without asking a context: a quoted string without
# escapes or line breaks, a decimal number of at most 15 digits, true/false/null, an empty object
# or array. Flows are full of them (every <data> default, every reset to ''), and each one asked
# of a context cost a compiled function and a call.
_STRING = re.compile(r"""^(?:'([^'\\\n\r\u2028\u2029]*)'|"([^"\\\n\r\u2028\u2029]*)")$""")
_NUMBER = re.compile(r"^-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?$")  # ASCII: float() takes "1\u0661"
_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None}

_keys = itertools.count()

EXPR, LOCATION, SCRIPT = "expr", "location", "script"


@dataclass(slots=True, eq=False)
class JsCode:
    """``value_src``/``cond_src``: wrappers evaluating to a function; ``script``: global code."""

    mode: str
    key: int
    value_src: str = ""
    cond_src: str = ""
    script: str = ""
    in_ids: tuple[str, ...] = ()
    in_all: bool = False  # push every state id the datamodel knows of, not just in_ids
    needs_event: bool = False
    # Reads only (no assignment, ++/--, delete, new, call other than In): running it leaves the
    # variables as they were, so the saved copy stays good. (A getter a script defined with a
    # side effect would escape this; flows do not write those.)
    pure: bool = False
    name: str | None = None  # the expression is this one variable's name
    literal: Callable[[], Any] | None = None  # the expression's value, made here (see ``literal_value``)
    local: Local | None = None  # answers the expression here when it can (``local.compile_local``)
    # A location's variable (LOCATION_ROOT of its text, "" if none) and whether the text is that
    # name alone: an <assign> asks both, so they are found once here.
    root: str = ""
    bare: bool = False


def analyse(mode: str, text: str) -> JsCode:
    """A ``JsCode`` for ``text``: its wrappers and what it needs pushed into the context first."""
    root = ""
    if mode == LOCATION:
        m = LOCATION_ROOT.match(text)
        root = m.group(1) if m else ""
        bare = text.strip() == root
    if mode != SCRIPT:
        text = text.strip().rstrip(";").rstrip()  # `new testobject();` is written as an expression (W3C 452)
    literal = tuple(m.group(2) for m in IN_LITERAL.finditer(text))
    stripped = IN_LITERAL.sub("true", text)
    other_calls = bool(CALL.search(stripped))
    dynamic_in = bool(IN_ANY.search(stripped))
    code = JsCode(mode, next(_keys), in_ids=literal)
    code.in_all = mode == SCRIPT or other_calls or dynamic_in
    code.needs_event = mode == SCRIPT or other_calls or "_event" in text
    code.pure = mode == EXPR and not other_calls and not dynamic_in and not MUTATES.search(stripped)
    if mode == EXPR and NAME.match(text) and text not in ("undefined", "null", "true", "false", "NaN", "Infinity"):
        code.name = text
    if mode == EXPR:
        code.literal = literal_value(text)
        if code.literal is None and code.name is None:
            code.local = compile_local(text)
        code.value_src = f"(function(){{return __scxml.out((\n{text}\n));}})"
        code.cond_src = f"(function(){{return !!(\n{text}\n);}})"
    elif mode == LOCATION:
        code.root, code.bare = root, bare
        code.value_src = f"(function(k,p){{\"use strict\";\n{text}\n= __scxml.value(k,p);}})"
        code.cond_src = f"(function(){{return __scxml.out((\n{text}\n));}})"
    else:
        code.script = text
    return code


def literal_value(text: str) -> Callable[[], Any] | None:
    """A maker of ``text``'s value when it is a literal (see ``_STRING``), else None. Objects and
    arrays are made anew each time: every evaluation of ``({})`` is a new object."""
    m = _STRING.match(text)
    if m is not None:
        value: Any = m.group(1) if m.group(1) is not None else m.group(2)
    elif _NUMBER.match(text) and not (text[0] == "-" and float(text) == 0):  # -0 keeps its sign there
        number = float(text)
        value = int(number) if number.is_integer() else number  # one number type: 2.0 is 2
    elif text in _WORDS:
        value = _WORDS[text]
    elif text in ("({})", "{}"):
        return dict
    elif text in ("[]", "([])"):
        return list
    else:
        return None
    return lambda: value
