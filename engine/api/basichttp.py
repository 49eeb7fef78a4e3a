"""The Basic HTTP Event I/O Processor's inbound URL: events posted into a session by others.

The URI a session publishes in ``_ioprocessors`` carries a capability; a request without one is
answered 404 exactly like a wrong one. The processor itself (``engine.scxml.basichttp``) checks it.
"""

from __future__ import annotations

from aiohttp import web

from .appkeys import RUNTIME

routes = web.RouteTableDef()


@routes.post("/basichttp/{sid}")
@routes.post("/basichttp/{sid}/{cap}")
async def inbound(request: web.Request) -> web.StreamResponse:
    return await request.app[RUNTIME].basichttp.handle(request)
