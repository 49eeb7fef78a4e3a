"""API keys and roles (SPEC 8): every endpoint but health (and the W3C Basic HTTP receiver)
needs a key; ``/admin`` needs the administrator key, except flows, services, CALLBACK_SETTINGS
and push credentials, which the developer role may manage too."""

from __future__ import annotations

from aiohttp import web

from ..keys import ADMIN, DEVELOPER
from .appkeys import KEYS, ROLE
from .errors import Handler, error_response

OPEN_PREFIXES = ("/health", "/basichttp/")
DEVELOPER_PREFIXES = ("/admin/flows", "/admin/services", "/admin/callback-settings", "/admin/push")


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
    developer_area = request.path.startswith(DEVELOPER_PREFIXES)
    if request.path.startswith("/admin") and role != ADMIN and not (role == DEVELOPER and developer_area):
        also = " or the developer key" if developer_area else ""
        return error_response(403, f"this endpoint needs the administrator key{also}")
    request[ROLE] = role
    return await handler(request)
