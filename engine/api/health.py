"""Health: liveness (the process answers) and readiness (it can take work now, and if not, why).

``/health`` and ``/health/live`` answer 200 while the event loop runs. ``/health/ready`` checks
what a request needs to succeed: the storage writer alive and keeping up (backlog age), no
failing writes, the disk not full, the contact-center platform up; otherwise 503 with the
reasons, so a load balancer takes the node out instead of letting requests hang. A cluster node
(issue 14) is ready only while it holds partitions under a live lease: before its first claim it
has nowhere to place a new callback, and after losing its lease ("lease lost") it may change
nothing; ``/health`` then also names the node, its partitions, its lease's remaining seconds and
its platform.

``storage_refusal`` refuses changing requests at once (503) while
storage is known to be failing: they would only wait for ``durability_timeout`` and then answer
503 anyway, having changed something in memory meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..storage import StorageUnavailable
from .appkeys import RUNTIME, SETTINGS
from .contract import JSON, Answer, ok, operation, ref
from .errors import error_response
from .times import iso

VERSION = "0.1.0"
routes = web.RouteTableDef()
CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def _basics(request: web.Request) -> dict[str, Any]:
    runtime = request.app.get(RUNTIME)  # absent only while the engine starts or after it stopped
    if runtime is None:
        now = iso(time.time())
        return {"version": VERSION, "sessions": 0, "flows": 0, "persistence": False, "uptime": 0.0,
                "clock": now, "wall_clock": now, "time_scale": 1.0}
    mgr = runtime.manager
    return {
        "version": VERSION,
        "sessions": len(mgr.sessions),
        "flows": len(runtime.flows.current),
        "persistence": runtime.store is not None,
        "uptime": round(time.time() - runtime.started_at, 3) if runtime.started_at else 0.0,
        # The engine's clock: ahead of the wall clock when the simulator runs time faster.
        "clock": iso(mgr.clock.now()),
        "wall_clock": iso(time.time()),
        "time_scale": mgr.clock.scale,
        **_cluster(runtime),
    }


def _cluster(runtime: Any) -> dict[str, Any]:
    """A cluster node's name, the partitions it holds, how long its lease has left (seconds; 0
    when lost) and its platform; nothing outside a cluster."""
    membership = runtime.membership
    if membership is None:
        return {}
    return {"node": membership.node, "partitions": sorted(membership.held),
            "lease_remaining": round(membership.lease_remaining, 3),
            "platform": runtime.settings.platform_url or "embedded"}


@routes.get("/health")
@routes.get("/health/live")
@operation("Liveness: the process answers", "health", ok(ref("Health")), open=True)
async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", **_basics(request)})


@routes.get("/health/ready")
@operation("Readiness: whether the engine can take work now, and if not why", "health", (
    ok({"allOf": [ref("Health"), {"type": "object", "required": ["reasons", "checks"]}]}, "ready"),
    Answer(503, "not ready: reasons says why", {JSON: ref("Health")})), open=True)
async def ready(request: web.Request) -> web.Response:
    runtime = request.app.get(RUNTIME)
    settings = request.app[SETTINGS]
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    if runtime is None or not runtime.started_at:
        reasons.append("the engine is starting")
    else:
        storage = runtime.manager.writer_status()
        checks["storage"] = storage
        if storage["persistent"]:
            if not storage["alive"]:
                reasons.append("the storage writer has stopped")
            if storage["disk_full"]:
                reasons.append("the disk is full")
            if storage["error"]:
                reasons.append(f"storage writes fail: {storage['error']}")
            if storage["backlog_age"] > settings.ready_max_backlog_age:
                reasons.append(f"changes wait {storage['backlog_age']:.1f} s to be stored "
                               f"(more than {settings.ready_max_backlog_age:g} s)")
        membership = runtime.membership
        if membership is not None:  # a cluster node takes work once it holds partitions under a live lease
            if membership.lease_lost:
                reasons.append("lease lost")
            elif not membership.adopted:  # claimed partitions count once restored (then new work is placed there)
                reasons.append("this node holds no partitions yet")
    if runtime is not None:
        ok, detail = runtime.platform.health()
        checks["platform"] = {"ok": ok, "detail": detail}
        if not ok:
            reasons.append(f"platform: {detail}")
    body = {"status": "not ready" if reasons else "ready", "reasons": reasons, "checks": checks,
            **_basics(request)}
    return web.json_response(body, status=503 if reasons else 200)


def storage_refusal(request: web.Request) -> web.Response | None:
    """The door's storage gate: 503 for a changing request while storage is known to be failing;
    None otherwise."""
    if request.method in CHANGING and not request.path.startswith("/health"):
        runtime = request.app.get(RUNTIME)
        if runtime is not None:
            try:
                runtime.manager.check_writer()
            except StorageUnavailable as e:
                return error_response(503, str(e))
    return None
