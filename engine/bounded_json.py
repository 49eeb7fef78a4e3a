"""JSON from outside, parsed with a nesting limit.

A body nested a few hundred levels is only a few kilobytes, yet every recursive walk over it
(the snapshot encoder, ``json.dumps``, a flow's expressions) can hit Python's recursion limit
far from the request that brought it. So every JSON input is refused at the door beyond a
modest depth; nothing that deep is a legitimate parameter set.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

MAX_DEPTH = 32


class TooDeep(ValueError):
    pass


class NotUnicode(ValueError):
    pass


# JSON may escape a UTF-16 surrogate alone ("\ud800"); Python then holds a string that is no
# Unicode text: UTF-8 cannot encode it, the snapshot codec and the databases refuse it, so a
# session or record holding one fails far from the request that brought it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises ``ValueError``: ``TooDeep`` for documents nested beyond
    ``max_depth``, ``NotUnicode`` for a string (or name) holding a lone surrogate.

    orjson reads it first (every create request's body: the standard library's parser was ~1 %
    of the engine's main thread). What orjson refuses (NaN, a byte order mark, a lone surrogate,
    other encodings...) and any long run of digits (orjson reads an integer beyond 64 bits as a
    float) is read by ``json.loads`` as before, so the value or the error is the same."""
    value = _orjson_loads(text)
    if value is _ASK_JSON:
        try:
            value = json.loads(text)
        except RecursionError:
            raise TooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if _brackets(text) > max_depth and nesting_exceeds(value, max_depth):
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    found = None if _plain(text) else lone_surrogate(value)
    if found is not None:
        where, char = found
        raise NotUnicode(f"the string at {where} holds a lone UTF-16 surrogate (\\u{ord(char):04x}), "
                         "which is not a Unicode character")
    return value


_ASK_JSON = object()  # _orjson_loads: json.loads decides
_LONG_DIGITS = re.compile("[0-9]{19}")
# Every byte to "0" if an ASCII digit, else to " ": a run of 19 digits is then a plain substring
# (four times faster than the pattern above on a create's body).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_NINETEEN_ZEROS = b"0" * 19


def _orjson_loads(text: str | bytes) -> Any:
    """orjson's value of ``text`` where it is ``json.loads``' too, else ``_ASK_JSON``."""
    if isinstance(text, str):
        if _LONG_DIGITS.search(text):
            return _ASK_JSON
    elif not isinstance(text, bytes | bytearray) or _NINETEEN_ZEROS in text.translate(_DIGITS_AS_ZEROS):
        return _ASK_JSON  # anything else is json.loads' to accept or refuse (a TypeError)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _ASK_JSON


def _brackets(text: str | bytes) -> int:
    """Objects and arrays opened in ``text`` at most (brackets in strings count too): no deeper
    than that, so the walk is needed only past the limit."""
    if isinstance(text, str):
        return text.count("{") + text.count("[")
    return text.count(b"{") + text.count(b"[")


def _plain(text: str | bytes) -> bool:
    """ASCII with no ``\\u`` escape: no string in it can hold a surrogate, so most bodies skip the walk."""
    return text.isascii() and (b"\\u" not in text if isinstance(text, bytes | bytearray) else "\\u" not in text)


def lone_surrogate(value: Any) -> tuple[str, str] | None:
    """``(path, surrogate)`` of the first string or object name holding a lone surrogate (path
    ``$.a[0]``), or None; iterative, like ``nesting_exceeds``."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            m = _SURROGATE.search(item)
            if m is not None:
                return path, m.group()
        elif isinstance(item, dict):
            for key, child in item.items():
                m = _SURROGATE.search(key)
                if m is not None:
                    return f"{path} (an object's name)", m.group()
                stack.append((child, f"{path}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return None


def nesting_exceeds(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """Whether objects and arrays nest deeper than ``max_depth`` (the outermost one is level 1);
    iterative, so it cannot itself run out of stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list | tuple) else ()
        if not children and not isinstance(item, dict | list | tuple):
            continue
        if depth > max_depth:
            return True
        for child in children:
            if isinstance(child, dict | list | tuple):
                stack.append((child, depth + 1))
    return False
