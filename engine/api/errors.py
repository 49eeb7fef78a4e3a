"""JSON errors everywhere: ``{"exception": kind, "message": what and why}``; bad input is a 4xx,
never a 500. The door (``door.py``) turns what escapes a handler into these answers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..storage import StorageUnavailable
from .appkeys import SETTINGS

log = logging.getLogger("engine.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_KINDS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 409: "Conflict", 413: "PayloadTooLarge", 415: "UnsupportedMediaType",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    """An error answer with a JSON body."""

    def __init__(self, status: int, message: str, kind: str | None = None, **extra: object):
        super().__init__(message)
        self.status_code = status
        self.body_json = {"exception": kind or _KINDS.get(status, "Error"), "message": message, **extra}


def error_response(status: int, message: str, kind: str | None = None, **extra: object) -> web.Response:
    body = {"exception": kind or _KINDS.get(status, "Error"), "message": message, **extra}
    return web.json_response(body, status=status)


def answer_for(request: web.Request, error: Exception) -> web.Response | None:
    """The JSON answer to an exception that escaped a handler or the door's checks; None for a
    redirect and the like (an ``HTTPException`` below 400), which goes on to the client as it is."""
    if isinstance(error, ApiError):
        return web.json_response(error.body_json, status=error.status_code)
    if isinstance(error, StorageUnavailable):
        return error_response(503, str(error))
    if isinstance(error, web.HTTPRequestEntityTooLarge):
        limit = request.app[SETTINGS].max_body_bytes
        return error_response(413, f"request body larger than {limit} bytes")
    if isinstance(error, web.HTTPException):
        if error.status_code < 400:
            return None
        answer = error_response(error.status_code, error.reason or "request failed")
        if "Allow" in error.headers:  # a 405 says which methods the path takes (RFC 9110)
            answer.headers["Allow"] = error.headers["Allow"]
        return answer
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=error)
    return error_response(500, "internal error; see the engine log", "InternalError")
