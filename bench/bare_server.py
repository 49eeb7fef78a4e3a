"""A bare aiohttp server: the reference point of the session-API benchmark.

It does what any JSON API must do per request (read and parse the body, answer JSON)
and nothing else, so the engine's rates divided by this server's rate say how much of
the HTTP ceiling of this machine and this Python the engine reaches.

Run as ``python bench/bare_server.py --port N``; ``GET /health`` answers once it is up.
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    """Parse the JSON body and answer a small JSON object, like a cheap API call."""
    body = json.loads(await request.read() or b"{}")
    return web.json_response({"ok": True, "keys": len(body)})


async def health(request: web.Request) -> web.Response:
    """Readiness probe, same shape as the engine's."""
    return web.json_response({"status": "ok"})


def main() -> None:
    """Serve on loopback until killed; no access log, like the engine."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port: int = parser.parse_args().port
    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
