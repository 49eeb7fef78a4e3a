"""The access log and the HTTP metrics: one line and one observation per answered request.

A line holds the method, the route's pattern (``/genesys/1/service/callback/{service}``, not the
path: ids and query strings stay out of the log and out of the metrics' labels), the status, the
milliseconds taken and the NAME of the key used (never the key itself; ``-`` without one). The
middleware runs outermost, so it sees the status the client got, refusals at the door included.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from ..logs import info_line
from .appkeys import API_KEY, RUNTIME
from .errors import Handler

log = logging.getLogger("engine.access")
UNMATCHED = "(unmatched)"  # no route: the path itself would make a label per path a client tries
# Polled every few seconds by load balancers and Prometheus: their successful answers are logged at
# DEBUG, so the INFO log is not a column of probes (they are still counted in the metrics).
PROBES = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500  # what the client gets when an exception escapes every middleware
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:  # redirects and the like, raised past json_errors
        status = e.status
        raise
    finally:
        seconds = time.perf_counter() - started
        route = route_of(request)
        key = request.get(API_KEY)
        fields = {"method": request.method, "route": route, "status": status,
                  "ms": round(seconds * 1000, 2), "key": key.name if key is not None else "-"}
        if route in PROBES and status < 400:
            log.debug("request", extra=fields)
        else:
            info_line(log, "request", fields)
        runtime = request.app.get(RUNTIME)
        if runtime is not None:
            runtime.metrics.http_request(request.method, route, status, seconds)
