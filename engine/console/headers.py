"""The headers every ``/ui`` answer carries: a Content-Security-Policy that lets the page run only
its own files (no inline script or style, nothing from elsewhere but Firebase's Google APIs for
the push page), no framing, no MIME sniffing, no referrer; and no caching of the page itself
or of the sign-in answer (which holds the CSRF token)."""

from __future__ import annotations

from aiohttp import web

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self' https://*.googleapis.com; worker-src 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'; object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
NO_STORE = frozenset({"/ui", "/ui/", "/ui/index.html", "/ui/session"})


def is_console_path(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


async def console_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs for every answer, the errors of the middlewares included."""
    if not is_console_path(request.path):
        return
    response.headers.update(SECURITY_HEADERS)
    # The other files are checked again on each load (a new engine version's files are used at once).
    response.headers["Cache-Control"] = "no-store" if request.path in NO_STORE else "no-cache"
