"""Request parameters from a JSON object or a form, within the configured input limits."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import bounded_json
from .appkeys import SETTINGS
from .errors import ApiError


async def read_params(request: web.Request, *, allow_empty: bool = True) -> dict[str, Any]:
    """Query-free parameters of a POST/PUT body (JSON object or form-encoded)."""
    limits = request.app[SETTINGS]
    raw = await request.read()
    if not raw.strip():
        if not allow_empty:
            raise ApiError(400, "the request body is empty")
        return {}
    ctype = request.content_type
    if ctype == "application/json":
        params = parse_json(raw, limits.max_json_depth)
        if not isinstance(params, dict):
            raise ApiError(400, "the JSON body must be an object of parameters")
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        try:
            form = await request.post()
        except ValueError as e:
            raise ApiError(400, f"the form body cannot be read: {e}") from None
        params = {}
        for key in form:
            values = form.getall(key)
            if not all(isinstance(v, str) for v in values):
                raise ApiError(400, f"parameter {key!r}: file uploads are not accepted")
            params[key] = values[0] if len(values) == 1 else list(values)
    else:
        raise ApiError(415, f"send JSON or a form, not {ctype!r}")
    check_limits(params, limits)
    return params


def check_limits(params: dict[str, Any], limits: Any) -> None:
    if len(params) > limits.max_keys:
        raise ApiError(400, f"too many parameters: {len(params)} (at most {limits.max_keys})")
    for key, value in params.items():
        if not key or len(key) > limits.max_key_length:
            raise ApiError(400, f"parameter names must have 1 to {limits.max_key_length} characters")
        if isinstance(value, str) and len(value) > limits.max_value_length:
            raise ApiError(400, f"parameter {key!r} is longer than {limits.max_value_length} characters")


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be a whole number, not {raw!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"query parameter {name!r} must be between {lo} and {hi}")
    return value


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """A JSON object body (admin and notification APIs); anything else is a 400."""
    body = parse_json(await request.read(), request.app[SETTINGS].max_json_depth)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def parse_json(raw: bytes | str, max_depth: int) -> Any:
    """Any JSON body: invalid or too deeply nested is a 400 that says which."""
    try:
        return bounded_json.loads(raw, max_depth)
    except bounded_json.TooDeep as e:
        raise ApiError(400, f"the body is nested too deeply: {e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None


async def read_list_text(request: web.Request) -> str:
    """The body of a transaction-list upload or preview: UTF-8 text, not blank."""
    try:
        text = (await request.read()).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, f"the list must be UTF-8 text: byte {e.start} is not") from None
    if not text.strip():
        raise ApiError(400, "the body must be the list in the GMS_Events.cfg format (text/plain)")
    return text
