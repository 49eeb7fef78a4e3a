"""Keys and roles at the door (SPEC 8): every endpoint but health, the W3C Basic HTTP receiver and
the API's description (``/openapi.json``, ``/docs``) needs a key; what each role may reach is the
table in ``engine/roles.py``.

No key: 401 "API key required"; a key nobody issued (or one revoked or rotated away): 401
"invalid API key"; a role that may not do this: 403 naming the roles that may. A client key
scoped to services reaches only their callbacks: the service in a callback URL is checked here
(another service answers 404, as if it did not exist, so a scoped key learns nothing about
other services); queries and the queue position are filtered in ``gms.py``.
"""

from __future__ import annotations

from aiohttp import web

from .. import roles
from ..keys import ApiKey
from .appkeys import API_KEY, KEYS, ROLE
from .errors import Handler, error_response

OPEN_PREFIXES = ("/health", "/basichttp/", "/docs/")
OPEN_PATHS = frozenset({"/openapi.json", "/docs"})  # the contract and its page hold no secret
CALLBACK_PATH = "/genesys/1/service/callback/"
NOT_FOUND_KIND = "com.genesyslab.gsg.services.callback.CallbackNotFound"


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def scope_of(request: web.Request) -> tuple[str, ...] | None:
    """The services the request's key is limited to; None when it is not limited."""
    key: ApiKey | None = request.get(API_KEY)
    return key.services if key is not None else None


def in_scope(request: web.Request, service: str) -> bool:
    scope = scope_of(request)
    return scope is None or service in scope


def _refusal(role: str, method: str, path: str) -> web.Response:
    who = [r for r in roles.roles_allowing(method, path) if r != role]
    needs = " or the ".join(f"{r} key" for r in who) or "the administrator key"
    return error_response(403, f"the {role} role may not {method} {path}; this needs the {needs}")


@web.middleware
async def require_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(OPEN_PREFIXES) or request.path in OPEN_PATHS:
        return await handler(request)
    presented = presented_key(request)
    if presented is None:
        return error_response(401, "API key required: send Authorization: Bearer <key> or x-api-key: <key>")
    key = request.app[KEYS].authenticate(presented)
    if key is None:
        return error_response(401, "invalid API key")
    request[ROLE] = key.role
    request[API_KEY] = key
    if request.match_info.http_exception is not None:
        return await handler(request)  # no such route: its 404/405, for every role alike
    if not roles.allowed(key.role, request.method, request.path):
        return _refusal(key.role, request.method, request.path)
    if key.services is not None:
        if not any(roles.in_area(request.path, a) for a in roles.SCOPED_CLIENT_AREAS):
            return error_response(403, f"this key is scoped to the services {', '.join(key.services)}; "
                                       f"it reaches only the callback and notification APIs")
        service = request.match_info.get("service")
        if request.path.startswith(CALLBACK_PATH) and service is not None and service not in key.services:
            return error_response(404, f"no callback service {service!r}", NOT_FOUND_KIND)
    return await handler(request)
