"""The Basic HTTP Event I/O Processor's inbound URL: events posted into a session by others.

The URI a session publishes in ``_ioprocessors`` carries a capability; a request without one is
answered 404 exactly like a wrong one. The processor itself (``engine.scxml.basichttp``) checks it.

In a cluster the URI is the load balancer's (``public_url``), so the event may reach any node,
while the session runs on the node holding its partition only: a node that does not hold it
forwards the request there (``cluster.forward``, as for the other writes), and the holder checks
the capability and takes the event. Every node derives the same capabilities from the shared
secret key.
"""

from __future__ import annotations

from aiohttp import web

from ..ids import partition_of
from .appkeys import RUNTIME
from .cluster import FORWARDER, forward
from .contract import Answer, Body, operation

routes = web.RouteTableDef()


@routes.post("/basichttp/{sid}")
@routes.post("/basichttp/{sid}/{cap}")
@operation("W3C Basic HTTP Event I/O Processor: an event into a session (the URL it publishes)", "sessions",
           Answer(200, "the event was taken", {"text/plain": {"type": "string"}}), open=True,
           errors={400: "a JSON body that cannot be read", 403: "an event name only the engine may raise",
                   404: "no such session, or a wrong or missing capability"},
           body=Body({"type": "object", "additionalProperties": {"type": "string"}},
                     ("application/x-www-form-urlencoded", "application/json"),
                     "_scxmleventname (the event's name, default HTTP.POST) and the event's data"),
           path={"sid": "the session's id", "cap": "the capability the session published"})
async def inbound(request: web.Request) -> web.StreamResponse:
    if FORWARDER in request.app and "cap" in request.match_info \
            and (held_elsewhere := await forward(request, partition_of(request.match_info["sid"]))) is not None:
        return held_elsewhere  # the session runs on the node holding its partition
    return await request.app[RUNTIME].basichttp.handle(request)
