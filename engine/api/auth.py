"""API keys and roles: every endpoint but health (and the W3C Basic HTTP receiver) needs a key;
``/admin`` needs the administrator key."""

from __future__ import annotations

from aiohttp import web

from ..keys import ADMIN
from .appkeys import KEYS, ROLE
from .errors import Handler, error_response

OPEN_PREFIXES = ("/health", "/basichttp/")


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


@web.middleware
async def require_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(OPEN_PREFIXES):
        return await handler(request)
    key = presented_key(request)
    role = request.app[KEYS].get(key) if key else None
    if role is None:
        return error_response(401, "an API key is required: Authorization: Bearer <key> or x-api-key")
    if request.path.startswith("/admin") and role != ADMIN:
        return error_response(403, "this endpoint needs the administrator key")
    request[ROLE] = role
    return await handler(request)
