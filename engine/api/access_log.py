"""The access log and the HTTP metrics: one line and one observation per answered request.

A line holds the method, the route's pattern (``/genesys/1/service/callback/{service}``, not the
path: ids and query strings stay out of the log and out of the metrics' labels), the status, the
milliseconds taken and the NAME of the key used (never the key itself; ``-`` without one). The
line is written by the door (``door.py``) once the answer is known, so it holds the status the
client got, refusals at the door included.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ..logs import info_line
from .appkeys import API_KEY, RUNTIME

log = logging.getLogger("engine.access")
UNMATCHED = "(unmatched)"  # no route: the path itself would make a label per path a client tries
# Polled every few seconds by load balancers and Prometheus: their successful answers are logged at
# DEBUG, so the INFO log is not a column of probes (they are still counted in the metrics).
PROBES = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def log_request(request: web.Request, status: int, seconds: float) -> None:
    """The access line and the metrics' observation of one answered request (``door`` calls it
    last, so ``status`` is what the client got, refusals at the door included)."""
    route = route_of(request)
    key = request.get(API_KEY)
    method = request.method
    fields = {"method": method, "route": route, "status": status, "ms": round(seconds * 1000, 2),
              "key": key.name if key is not None else "-"}
    if status < 400 and route in PROBES:
        log.debug("request", extra=fields)
    else:
        info_line(log, "request", fields)
    runtime = request.app.get(RUNTIME)
    if runtime is not None:
        runtime.metrics.http_request(method, route, status, seconds)
