"""The engine process: an aiohttp application built by a factory from settings.

``create_app`` wires storage, the flow registry, the session manager and the HTTP routes;
startup restores every persisted session, shutdown (SIGTERM) stops accepting requests,
lets the macrostep in progress finish (macrosteps never yield to the loop), flushes storage.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from .api import admin, ors
from .api.appkeys import ENGINE, FLOWS, KEYS, KEYS_GENERATED, MANAGER, SETTINGS
from .api.auth import require_key
from .api.errors import json_errors
from .flows import FlowRegistry
from .keys import load_keys
from .scxml import DEFAULT_REGISTRY, BasicHttpProcessor, Limits, Registry
from .sessions.manager import SessionManager
from .settings import Settings
from .storage import Store

log = logging.getLogger("engine")
VERSION = "0.1.0"


class Engine:
    """The parts of a running engine, opened and closed together."""

    def __init__(self, settings: Settings, registry: Registry | None = None):
        self.settings = settings
        self.registry = registry or DEFAULT_REGISTRY
        self.store: Store | None = None
        self.flows: FlowRegistry | None = None
        self.manager: SessionManager | None = None
        self.started_at = 0.0

    async def open(self, app: web.Application | None = None) -> None:
        s = self.settings
        if s.persistence:
            self.store = await Store.open(s.db_url)
        self.flows = FlowRegistry(s.flows_dir, self.registry, self.store, s.flow_watch_interval)
        await self.flows.start()
        limits = Limits(max_microsteps=s.max_microsteps, max_invoke_depth=s.max_invoke_depth)
        self.manager = SessionManager(self.flows, self.store, registry=self.registry, limits=limits)
        basic = self.manager.processor_for("basichttp")
        if isinstance(basic, BasicHttpProcessor):
            basic.base_url = s.base_url
        await self.manager.open()
        self.started_at = time.time()
        log.info("engine ready: %d flows, %d sessions restored, persistence %s",
                 len(self.flows.current), len(self.manager.sessions),
                 "on (" + s.db_url.split("://")[0] + ")" if self.store else "off")

    async def close(self) -> None:
        if self.manager is not None:
            await self.manager.close()
        if self.flows is not None:
            await self.flows.close()
        if self.store is not None:
            await self.store.close()
        log.info("engine stopped")


async def health(request: web.Request) -> web.Response:
    engine: Engine = request.app[ENGINE]
    mgr = engine.manager
    return web.json_response({
        "status": "ok", "version": VERSION,
        "sessions": len(mgr.sessions) if mgr else 0,
        "flows": len(engine.flows.current) if engine.flows else 0,
        "persistence": engine.store is not None,
        "uptime": round(time.time() - engine.started_at, 3),
    })


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> web.Application:
    settings = settings or Settings.load()
    engine = Engine(settings, registry)
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[json_errors, require_key])
    keys, generated = load_keys(settings)
    app[SETTINGS] = settings
    app[ENGINE] = engine
    app[KEYS] = keys
    app[KEYS_GENERATED] = generated
    app.router.add_get("/health", health)
    app.router.add_routes(ors.routes)
    app.router.add_routes(admin.routes)

    async def on_startup(app: web.Application) -> None:
        await engine.open(app)
        app[MANAGER] = engine.manager
        app[FLOWS] = engine.flows
        basic = engine.manager.processor_for("basichttp")  # type: ignore[union-attr]
        app.router.add_post("/basichttp/{sid}", basic.handle)

    async def on_cleanup(app: web.Application) -> None:
        await engine.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
