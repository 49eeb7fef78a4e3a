"""Keys and roles at the door (SPEC 8): every endpoint but health, the W3C Basic HTTP receiver and
the API's description (``/openapi.json``, ``/docs``) needs a key; what each role may reach is the
table in ``engine/roles.py``.

No key: 401 "API key required"; a key nobody issued (or one revoked or rotated away): 401
"invalid API key"; a role that may not do this: 403 naming the roles that may. The role is checked
before the router's 404 or 405, so a key learns whether a path or method exists only inside its
role's areas. A client key scoped to services reaches only their callbacks: the service in a
callback URL is checked here (another service answers 404, as if it did not exist, so a scoped key
learns nothing about other services); queries and the queue position are filtered in ``gms.py``.

The console's page (``/ui/``) sends no key: its session cookie (``engine/console/session.py``)
stands for the key it signed in with, with that key's role and scope, as long as the session
lives. A change made with the cookie must echo the session's CSRF token in ``X-CSRF-Token`` and
name no other site as its ``Origin``, or it is refused (403) before anything else is checked.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from .. import roles
from ..keys import ApiKey
from .appkeys import API_KEY, KEYS, ROLE
from .errors import error_response

# Whole segments only: a route added later under, say, "/healthcheck" must not be open by accident.
OPEN_PREFIXES = ("/health/", "/basichttp/", "/docs/", "/ui/")  # /ui/: the console's files and its sign-in
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/ui"})  # the contract and its page hold no secret
CALLBACK_PATH = "/genesys/1/service/callback/"
NOT_FOUND_KIND = "com.genesyslab.gsg.services.callback.CallbackNotFound"


class CookieSessions(Protocol):
    """Sign-in sessions as the key check sees them (the console's, ``engine/console/session.py``,
    which sits above this layer and registers itself under ``COOKIE_SESSIONS``)."""

    cookie: str

    def key_for(self, request: web.Request, token: str) -> ApiKey | web.Response:
        """The key this cookie token stands for, or the refusal to answer (401, 403)."""
        ...


COOKIE_SESSIONS: web.AppKey[CookieSessions] = web.AppKey("cookie_sessions")


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


def key_refusal(request: web.Request) -> web.Response | None:
    """The door's key and role check: the refusal to answer, or None when the request may go on
    (its key and role then set on it, for the handlers and the access log).

    The path checked is the one the router matches (``path_safe``: ``%2F`` stays encoded), not the
    decoded ``request.path``: a decoded slash would draw an area boundary the router does not see,
    so a path decoding into an area a role may reach could still be routed outside it."""
    path = request.rel_url.path_safe
    if path.startswith(OPEN_PREFIXES) or path in OPEN_PATHS:
        return None
    presented = presented_key(request)
    if presented is not None:
        found_key = request.app[KEYS].authenticate(presented)
        if found_key is None:
            return error_response(401, "invalid API key")
        key = found_key
    else:
        sessions = request.app.get(COOKIE_SESSIONS)
        if sessions is None or sessions.cookie not in request.cookies:
            return error_response(401, "API key required: send Authorization: Bearer <key> or x-api-key: <key>")
        # The console's page: its session cookie stands for the key it signed in with.
        found = sessions.key_for(request, request.cookies[sessions.cookie])
        if isinstance(found, web.Response):
            return found
        key = found
    request[ROLE] = key.role
    request[API_KEY] = key
    method = request.method
    if not roles.allowed(key.role, method, path):
        return _refusal(key.role, method, path)
    if key.services is not None:
        if not roles.SCOPED_CLIENT.hold(path):
            return error_response(403, f"this key is scoped to the services {', '.join(key.services)}; "
                                       f"it reaches only the callback and notification APIs")
        service = request.match_info.get("service")
        if path.startswith(CALLBACK_PATH) and service is not None and service not in key.services:
            return error_response(404, f"no callback service {service!r}", NOT_FOUND_KIND)
    # Only now may the router say that no route has this path (404) or this method (405): a role
    # learns which paths and methods exist only where it may go.
    return None
