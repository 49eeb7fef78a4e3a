"""JSON errors everywhere: ``{"exception": kind, "message": what and why}``; bad input is a 4xx,
never a 500."""

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


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return web.json_response(e.body_json, status=e.status_code)
    except StorageUnavailable as e:
        return error_response(503, str(e))
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        return error_response(413, f"request body larger than {limit} bytes")
    except web.HTTPException as e:
        if e.status_code < 400:
            raise
        answer = error_response(e.status_code, e.reason or "request failed")
        if "Allow" in e.headers:  # a 405 says which methods the path takes (RFC 9110)
            answer.headers["Allow"] = e.headers["Allow"]
        return answer
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal error; see the engine log", "InternalError")
