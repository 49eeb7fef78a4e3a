"""JSON from outside, parsed with a nesting limit.

A body nested a few hundred levels is only a few kilobytes, yet every recursive walk over it
(the snapshot encoder, ``json.dumps``, a flow's expressions) can hit Python's recursion limit
far from the request that brought it. So every JSON input is refused at the door beyond a
modest depth; nothing that deep is a legitimate parameter set.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class TooDeep(ValueError):
    pass


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises ``ValueError`` (``TooDeep``) for documents nested beyond ``max_depth``."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if nesting_exceeds(value, max_depth):
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    return value


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
