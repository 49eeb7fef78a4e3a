"""Health: liveness (the process answers) and readiness (it can take work now, and if not, why).

``/health`` and ``/health/live`` answer 200 while the event loop runs. ``/health/ready`` checks
what a request needs to succeed: the storage writer alive and keeping up (backlog age), no
failing writes, the disk not full, the contact-center platform up; otherwise 503 with the
reasons, so a load balancer takes the node out instead of letting requests hang.

``storage_gate`` refuses changing requests at once (503) while storage is known to be failing:
they would only wait for ``durability_timeout`` and then answer 503 anyway, having changed
something in memory meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..storage import StorageUnavailable
from .appkeys import ENGINE, SETTINGS
from .errors import Handler, error_response

VERSION = "0.1.0"
routes = web.RouteTableDef()
CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def _basics(request: web.Request) -> dict[str, Any]:
    engine = request.app[ENGINE]
    mgr = engine.manager
    return {
        "version": VERSION,
        "sessions": len(mgr.sessions) if mgr else 0,
        "flows": len(engine.flows.current) if engine.flows else 0,
        "persistence": engine.store is not None,
        "uptime": round(time.time() - engine.started_at, 3) if engine.started_at else 0.0,
        # The engine's clock: ahead of the wall clock when the simulator runs time faster.
        "clock": mgr.clock.now() if mgr else time.time(),
        "time_scale": mgr.clock.scale if mgr else 1.0,
    }


@routes.get("/health")
@routes.get("/health/live")
async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", **_basics(request)})


@routes.get("/health/ready")
async def ready(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    settings = request.app[SETTINGS]
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    if engine.manager is None or not engine.started_at:
        reasons.append("the engine is starting")
    else:
        storage = engine.manager.writer_status()
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
    if engine.simulator is not None:
        ok, detail = engine.simulator.health()
        checks["platform"] = {"ok": ok, "detail": detail}
        if not ok:
            reasons.append(f"platform: {detail}")
    body = {"status": "not ready" if reasons else "ready", "reasons": reasons, "checks": checks,
            **_basics(request)}
    return web.json_response(body, status=503 if reasons else 200)


@web.middleware
async def storage_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in CHANGING and not request.path.startswith("/health"):
        manager = request.app[ENGINE].manager
        if manager is not None:
            try:
                manager.check_writer()
            except StorageUnavailable as e:
                return error_response(503, str(e))
    return await handler(request)
