"""Values for JSON answers: what JSON cannot show is shown as text."""

from __future__ import annotations

import json
from typing import Any

from lxml import etree


def jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        pass
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, etree._Element):
        return etree.tostring(value, encoding="unicode")
    return repr(value)
