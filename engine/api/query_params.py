"""Query parameters of the console's read endpoints, checked: a bad value is a 400 naming the
parameter, never a 500 further down (a database refuses a NUL byte; a time out of range
overflows)."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from ..callbacks.records import BadRequest, parse_time
from .errors import ApiError

MAX_TEXT = 200  # a service name, a number, a search: longer is no filter anyone means


def query_text(request: web.Request, name: str, max_length: int = MAX_TEXT) -> str | None:
    """A free-text parameter (absent or empty: None), without control characters."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length:
        raise ApiError(400, f"query parameter {name!r} is longer than {max_length} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise ApiError(400, f"query parameter {name!r} must not hold control characters")
    return raw


def query_time(request: web.Request, name: str) -> float | None:
    """An ISO 8601 time (Z, an offset, or none: UTC) as epoch seconds; absent: None."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw, "the time")
    except BadRequest as e:
        raise ApiError(400, f"query parameter {name!r}: {e}") from None
    except (ValueError, OverflowError):
        raise ApiError(400, f"query parameter {name!r} is not a time the engine can represent") from None


def query_choice(request: web.Request, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    allowed = list(choices)
    if raw not in allowed:
        raise ApiError(400, f"query parameter {name!r} must be one of {', '.join(allowed)}, not {raw[:40]!r}")
    return raw


def query_choices(request: web.Request, name: str, choices: Iterable[str]) -> tuple[str, ...]:
    """A parameter that may repeat and hold comma-separated values, each one of ``choices``."""
    allowed = list(choices)
    found: list[str] = []
    for raw in request.query.getall(name, []):
        for value in raw.split(","):
            value = value.strip()
            if not value:
                continue
            if value not in allowed:
                raise ApiError(400, f"query parameter {name!r}: {value[:40]!r} is not one of {', '.join(allowed)}")
            if value not in found:
                found.append(value)
    return tuple(found)
