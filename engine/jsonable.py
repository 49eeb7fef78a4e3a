"""Values for JSON answers: what JSON cannot show is shown as text."""

from __future__ import annotations

import json
from typing import Any

from lxml import etree


def jsonable(value: Any, _depth: int = 0) -> Any:
    if _depth > 64:
        return "<nested too deeply to show>"
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError, RecursionError):
        pass
    if isinstance(value, dict):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, _depth + 1) for v in value]
    if isinstance(value, etree._Element):
        return etree.tostring(value, encoding="unicode")
    return repr(value)
