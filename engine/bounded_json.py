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
    ``max_depth``, ``NotUnicode`` for a string (or name) holding a lone surrogate."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if nesting_exceeds(value, max_depth):
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    found = None if _plain(text) else lone_surrogate(value)
    if found is not None:
        where, char = found
        raise NotUnicode(f"the string at {where} holds a lone UTF-16 surrogate (\\u{ord(char):04x}), "
                         "which is not a Unicode character")
    return value


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
