"""``GET /metrics``: the engine's Prometheus metrics (``engine/observability/metrics.py``) in the
text exposition format. Needs a key like every other route: the monitor role (read-only) is
the one to give a Prometheus server."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .appkeys import RUNTIME
from .contract import Answer, operation
from .errors import error_response

routes = web.RouteTableDef()
EXPOSITION = "text/plain"


@routes.get("/metrics")
@operation("Prometheus metrics: callbacks, sessions, storage, deliveries, pushes, EWT, HTTP", "health",
           Answer(200, "the metrics in Prometheus' text exposition format", {EXPOSITION: {"type": "string"}}),
           errors={503: "the engine is starting or stopping"})
async def metrics(request: web.Request) -> web.Response:
    runtime = request.app.get(RUNTIME)
    if runtime is None:
        return error_response(503, "the engine is starting or stopping")
    return web.Response(body=generate_latest(runtime.metrics.registry),
                        headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})  # the format every Prometheus reads
