"""The console's routes: its static files under ``/ui/`` and signing in and out at ``/ui/session``.

The files served are the ones found under ``static/`` when the engine starts, by name from that
list: a path that is not on it (``..``, an encoded ``%2e%2e``, a file added later, a dotfile) is a
404, so nothing else of the package or the machine can be reached. Pages are routed in the
browser (``/ui/#/callbacks/ID``): the server never needs to know them.

Signing in needs no key header (the key is in the body); every other API call of the page goes
to the ordinary endpoints with the session cookie, checked by ``engine/api/auth.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import roles
from ..api.appkeys import KEYS, SETTINGS
from ..api.auth import COOKIE_SESSIONS
from ..api.body import read_json_object
from ..api.contract import Answer, Body, ok, operation
from ..api.errors import ApiError, error_response
from ..api.schemas import ISO_TIME
from ..api.times import iso
from ..keys import ApiKey, KeyStore
from ..settings import Settings
from .headers import console_headers
from .session import (
    COOKIE,
    CSRF_REFUSAL,
    SESSIONS,
    ConsoleSession,
    SessionStore,
    change_allowed,
    forwarded_https,
    same_origin,
)

log = logging.getLogger("engine.console")
routes = web.RouteTableDef()
STATIC_DIR = Path(__file__).with_name("static")
MEDIA = {  # suffix -> content type; files with other suffixes are not served
    ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
    ".png": "image/png", ".json": "application/json", ".map": "application/json", ".ico": "image/x-icon",
}
TEXTUAL = frozenset({"text/html", "text/javascript", "text/css", "image/svg+xml", "application/json"})
STATIC: web.AppKey[dict[str, tuple[Path, str]]] = web.AppKey("console_static")

# What the page may offer, each as a request the role table decides (the server checks every
# request anyway; this only keeps the page from offering what would be refused).
CAPABILITIES = {
    "callbacks.read": ("GET", "/admin/callbacks"),
    "callbacks.write": ("POST", "/genesys/1/service/x"),
    "queues.read": ("GET", "/admin/queues"),
    "services.read": ("GET", "/admin/services"),
    "services.write": ("PUT", "/admin/services/x"),
    "business_hours.write": ("PUT", "/admin/business-hours/x"),
    "transaction_lists.read": ("GET", "/admin/transaction-lists"),
    "transaction_lists.write": ("PUT", "/admin/transaction-lists/x"),
    "flows.read": ("GET", "/admin/flows"),
    "flows.write": ("PUT", "/admin/flows/x"),
    "push.read": ("GET", "/admin/push/credentials"),
    "push.write": ("PUT", "/admin/push/credentials"),
    "dead_letters.read": ("GET", "/admin/dead-letters"),
    "dead_letters.replay": ("POST", "/admin/dead-letters/1/replay"),
    "simulator.read": ("GET", "/admin/simulator"),
    "simulator.write": ("PUT", "/admin/simulator"),
    "reports.read": ("GET", "/admin/reports/callbacks"),
    "call_ins.read": ("GET", "/admin/call-ins"),
    "keys.manage": ("GET", "/admin/keys"),
    "sessions.read": ("GET", "/scxml/sessions"),
}

SESSION_SCHEMA = {
    "type": "object", "required": ["name", "role", "csrf", "expires_at", "may"],
    "properties": {
        "name": {"type": "string", "description": "the key's name"},
        "role": {"type": "string", "enum": list(roles.ROLES)},
        "csrf": {"type": "string", "description": "send it as X-CSRF-Token on every change made with the cookie"},
        "expires_at": {**ISO_TIME, "description": "when the session ends unless used again (wall clock)"},
        "may": {"type": "object", "additionalProperties": {"type": "boolean"},
                "description": "what the role may do, by capability name (the page's menu and actions)"},
    },
}
SIGNED_OUT = "not signed in, or the session ended (signed out, idle too long, too old, its key revoked or rotated)"


def static_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Every servable file under ``folder``: its path relative to it -> (file, content type)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and path.suffix in MEDIA and not any(p.startswith(".") for p in relative.parts):
            found[relative.as_posix()] = (path, MEDIA[path.suffix])
    return found


def install(app: web.Application, settings: Settings, keys: KeyStore) -> None:
    """The console on this app: its routes, its session store and its headers."""
    app[SESSIONS] = SessionStore(keys, settings.console_idle_minutes * 60, settings.console_max_hours * 3600)
    app[COOKIE_SESSIONS] = app[SESSIONS]  # the key check accepts its cookie
    app[STATIC] = static_files(STATIC_DIR)
    app.router.add_routes(routes)
    app.on_response_prepare.append(console_headers)


def capabilities(role: str) -> dict[str, bool]:
    return {name: roles.allowed(role, method, path) for name, (method, path) in CAPABILITIES.items()}


def _file(request: web.Request, name: str) -> web.Response:
    entry = request.app[STATIC].get(name)
    if entry is None:
        return error_response(404, f"no file {name[:200]!r} in the console")
    path, media = entry
    try:
        body = path.read_bytes()
    except OSError:  # removed since start-up
        return error_response(404, f"no file {name[:200]!r} in the console")
    return web.Response(body=body, content_type=media, charset="utf-8" if media in TEXTUAL else None)


@routes.get("/ui")
@operation("The console (redirects to /ui/)", "console", Answer(302, "to /ui/, where the page's relative "
                                                                     "links work"), open=True)
async def console_root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


@routes.get("/ui/")
@operation("The console's page (sign in with an API key, then the menu your role allows)", "console",
           Answer(200, "the page", {"text/html": {"type": "string"}}), open=True)
async def console_page(request: web.Request) -> web.Response:
    return _file(request, "index.html")


@routes.get("/ui/{path:.+}")
@operation("A file of the console (script, style, image)", "console",
           Answer(200, "the file", {media: {"type": "string"} for media in sorted(set(MEDIA.values()))}),
           errors={404: "not a file of the console"}, path={"path": "a file under the console's folder"},
           examples={"path": "js/core.js"}, open=True)
async def console_file(request: web.Request) -> web.Response:
    return _file(request, request.match_info["path"])


def _session_answer(store: SessionStore, session: ConsoleSession, key: ApiKey) -> dict[str, Any]:
    return {"name": key.name, "role": key.role, "csrf": session.csrf,
            "expires_at": iso(store.expires_at(session)), "may": capabilities(key.role)}


def _signed_out(status: int, message: str) -> web.Response:
    answer = error_response(status, message)
    answer.del_cookie(COOKIE, path="/")
    return answer


@routes.post("/ui/session")
@operation("Sign in to the console: the key becomes an HttpOnly session cookie", "console",
           ok(SESSION_SCHEMA, "signed in; Set-Cookie cbe_console (HttpOnly, SameSite=Strict, Path=/)"),
           body=Body({"type": "object", "required": ["key"], "properties": {"key": {"type": "string", "minLength": 1}}},
                     description="the API key"),
           errors={400: "no key in the body", 401: "invalid API key",
                   403: "the request names another site as its Origin",
                   429: "too many failed sign-ins from this address in the last minute (see Retry-After)"},
           open=True)
async def sign_in(request: web.Request) -> web.Response:
    store = request.app[SESSIONS]
    address = request.remote or "unknown"
    wait = store.retry_after(address)
    if wait is not None:
        answer = error_response(429, f"too many failed sign-ins from this address; try again in {wait} s",
                                "TooManyRequests")
        answer.headers["Retry-After"] = str(wait)
        return answer
    if not same_origin(request):  # a sign-in forced on the browser by another site
        return error_response(403, "sign in from the console's own page")
    body = await read_json_object(request)
    presented = body.get("key")
    if not isinstance(presented, str) or not presented.strip():
        raise ApiError(400, "key: the API key to sign in with is required")
    key = request.app[KEYS].authenticate(presented.strip())
    if key is None:
        store.failed(address)
        log.info("console sign-in with an invalid key from %s", address)
        return error_response(401, "invalid API key")
    token, session = store.sign_in(key)
    log.info("console sign-in: key %r (%s) from %s", key.name, key.role, address)
    answer = web.json_response(_session_answer(store, session, key))
    secure = request.app[SETTINGS].console_secure_cookie or request.secure or forwarded_https(request)
    answer.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/", secure=secure)
    return answer


@routes.get("/ui/session")
@operation("Who is signed in to the console (and the CSRF token again, for a reloaded page)", "console",
           ok(SESSION_SCHEMA, "signed in"), errors={401: SIGNED_OUT}, open=True)
async def current_session(request: web.Request) -> web.Response:
    store = request.app[SESSIONS]
    found = store.find(request.cookies.get(COOKIE))
    if found is None:
        return _signed_out(401, SIGNED_OUT)
    session, key = found
    return web.json_response(_session_answer(store, session, key))


@routes.delete("/ui/session")
@operation("Sign out of the console: the session is forgotten and the cookie cleared", "console",
           Answer(204, "signed out (also when no session was open)"),
           errors={403: CSRF_REFUSAL + " (send the X-CSRF-Token the sign-in answered)"}, open=True)
async def sign_out(request: web.Request) -> web.Response:
    store = request.app[SESSIONS]
    token = request.cookies.get(COOKIE)
    found = store.find(token, touch=False)
    if found is not None and not change_allowed(request, found[0]):
        return error_response(403, CSRF_REFUSAL)
    store.sign_out(token)
    answer = web.Response(status=204)
    answer.del_cookie(COOKIE, path="/")
    return answer
