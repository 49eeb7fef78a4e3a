"""The engine process: an aiohttp application built by a factory from settings.

``create_app`` wires storage, the flow registry, the session manager and the HTTP routes;
startup restores every persisted session, shutdown (SIGTERM) stops accepting requests,
lets the macrostep in progress finish (macrosteps never yield to the loop), flushes storage.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from functools import partial

from aiohttp import web

from . import persistence
from .api import admin, gms, health, keys, notifications, ors, push
from .api.appkeys import CALLBACKS, ENGINE, FLOWS, INITIAL_KEY, KEYS, MANAGER, NOTIFICATIONS, SETTINGS
from .api.auth import require_key
from .api.errors import json_errors
from .callbacks import flow_actions
from .callbacks.service import CallbackService
from .callbacks.services import ServiceRegistry
from .flows import FlowRegistry
from .keys import open_keys, scrub_environment
from .notifications.notifier import NotificationConfig, TransactionLists, target_problems
from .notifications.service import NotificationService
from .platform import adapter as platform_adapter
from .platform import ioprocessor as platform_io
from .platform.config import SimulatorConfig, load_simulator_config
from .platform.simulator import Simulator
from .push.callback_settings import CallbackSettings
from .push.fcm import FcmClient
from .push.service import PushService
from .scxml import BASIC_HTTP, DEFAULT_REGISTRY, BasicHttpProcessor, Limits, Registry
from .scxml.basichttp import RetryBudget
from .scxml.clock import Clock, ScaledClock
from .secretbox import SecretBox
from .sessions.manager import SessionManager
from .settings import Settings
from .storage import Store

log = logging.getLogger("engine")


class Engine:
    """The parts of a running engine, opened and closed together."""

    def __init__(self, settings: Settings, registry: Registry | None = None, freeze_gc: bool = False):
        self.settings = settings
        self.freeze_gc = freeze_gc  # process-wide, so only for the engine process itself (serve)
        self.registry = registry or engine_registry()
        self.store: Store | None = None
        self.flows: FlowRegistry | None = None
        self.manager: SessionManager | None = None
        self.simulator: Simulator | None = None
        self.callbacks: CallbackService | None = None
        self.notifications: NotificationService | None = None
        self.lists = TransactionLists(settings.config_dir, check=self._target_problems)
        # A service may name only lists and virtual queues that exist (checked on PUT, logged on load).
        self.services = ServiceRegistry(settings.config_dir, references={
            "_callback_events_list": ("transaction list", self.lists.names),
            "_urs_virtual_queue": ("virtual queue", self._queue_names),
        }, checks=[self._target_problems])
        self.callback_settings = CallbackSettings(settings.config_dir)
        self.push: PushService | None = None
        self._maintenance: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.started_at = 0.0

    def _queue_names(self) -> list[str]:
        return self.simulator.queues if self.simulator is not None else []

    def _target_problems(self, options: dict) -> list[str]:
        """A replacement service's or list's notification target under the outbound URL policy."""
        return target_problems(options, self.notifications.config.policy) if self.notifications else []

    async def open(self, app: web.Application | None = None) -> None:
        s = self.settings
        sim_path = s.config_dir / "simulator.toml"
        sim_config = load_simulator_config(sim_path) if sim_path.is_file() else SimulatorConfig()
        self.lists.load()
        for problem in self.callback_settings.load():
            log.error("CALLBACK_SETTINGS refused: %s", problem)
        box = SecretBox.for_data_dir(s.data_dir)
        notification_config = NotificationConfig.load(s.config_dir / "notifications.json", box)
        # One outbound URL policy (notifications.json) for every target: notifications, Basic HTTP
        # sends of flows, FCM (its URLs are checked here, before anything else opens).
        self.fcm = FcmClient(s.fcm_base_url, s.fcm_token_uri, policy=notification_config.policy)
        self.registry = self.registry.copy()
        self.registry.register_processor(BASIC_HTTP, partial(
            BasicHttpProcessor, base_url=s.base_url, key=box.derive("basichttp-capability"),
            policy=notification_config.policy,
            retry=RetryBudget(s.basichttp_max_attempts, s.basichttp_retry_seconds)), "basichttp")
        if s.persistence:
            self.store = await persistence.open_store(s.db_url)
        # One clock for every timer; the simulator mode may run it faster than the wall clock.
        clock: Clock = Clock()
        if sim_config.time_scale != 1:
            stored = await self.store.get_value("clock") if self.store else None
            clock = ScaledClock(sim_config.time_scale, start=float(stored) if stored else None)
        self.flows = FlowRegistry(s.flows_dir, self.registry, self.store, s.flow_watch_interval)
        await self.flows.start()
        limits = Limits(max_microsteps=s.max_microsteps, max_invoke_depth=s.max_invoke_depth,
                        macrosteps_per_turn=s.macrosteps_per_turn, turn_seconds=s.turn_seconds,
                        max_foreach_items=s.max_foreach_items, max_sends_per_second=s.max_sends_per_second)
        self.manager = SessionManager(self.flows, self.store, registry=self.registry, limits=limits, clock=clock,
                                      durability_timeout=s.durability_timeout,
                                      reserved_events=reserved_events())
        self.simulator = Simulator(sim_config, clock, platform_io.host_deliverer(self.manager))
        self.services.load()  # after the lists and the simulator: it checks the names they define
        self.manager.platform = self.simulator  # type: ignore[attr-defined]
        self.notifications = NotificationService(self.manager, self.services, self.lists, notification_config)
        self.callbacks = CallbackService(self.manager, self.services, self.simulator, self.notifications)
        self.manager.callbacks = self.callbacks  # type: ignore[attr-defined]
        self.push = PushService(self.callbacks, self.notifications, self.callback_settings, self.fcm,
                                box, self.simulator)
        self.callbacks.push = self.push
        await self.push.open()
        await self.manager.open()
        await self.notifications.open()
        await self.callbacks.open()
        self.started_at = time.time()
        if self.freeze_gc:  # what start-up built (restored sessions, flows) stays out of full collections
            gc.collect()
            gc.freeze()
        self._maintenance = asyncio.get_running_loop().create_task(self._maintain())
        log.info("engine ready: %d flows, %d sessions restored, persistence %s",
                 len(self.flows.current), len(self.manager.sessions),
                 "on (" + s.db_url.split("://")[0] + ")" if self.store else "off")

    async def purge(self) -> dict[str, int]:
        """Forget what ended more than ``retention_days`` ago (hourly, and on demand)."""
        assert self.store is not None
        cutoff = time.time() - self.settings.retention_days * 86400
        counts = await persistence.purge(self.store, cutoff)
        if any(counts.values()):
            log.info("retention: removed %s", counts)
        return counts

    async def _maintain(self) -> None:
        """Housekeeping: retention once an hour; every few minutes, move what has settled out of
        the garbage collector's way. Sessions hold no reference cycles, so a frozen one that ends
        is still freed at once; without this, every full collection would walk every live
        session (hundreds of milliseconds with tens of thousands of them)."""
        ticks = 0
        while not self._stopping.is_set():
            try:  # the first round waits: start-up has enough to do
                await asyncio.wait_for(self._stopping.wait(), 60 if ticks == 0 else 300)
                return
            except TimeoutError:
                pass
            if self.freeze_gc:
                gc.collect()
                gc.freeze()
            if ticks % 12 == 0 and self.store is not None and self.settings.retention_days > 0:
                try:
                    await self.purge()
                except Exception:
                    log.exception("retention purge failed; will try again")
            ticks += 1

    async def close(self) -> None:
        if self._maintenance is not None:
            self._stopping.set()  # a signal, not only a cancel: a cancel can get lost in a driver
            self._maintenance.cancel()
            await asyncio.wait([self._maintenance], timeout=5)
        if self.callbacks is not None:
            await self.callbacks.close()
        if self.manager is not None:
            await self.manager.close()  # the final flush; deliveries not yet done stay stored
        if self.notifications is not None:
            await self.notifications.close()
        if self.push is not None:
            await self.fcm.close()
        if self.flows is not None:
            await self.flows.close()
        if self.store is not None:
            await self.store.close()
        log.info("engine stopped")


def reserved_events() -> dict[str, str]:
    """Event namespaces only the engine's own parts raise in flows; clients are refused them."""
    return {**{p: "the contact-center platform" for p in platform_adapter.EVENT_PREFIXES},
            **{p: "the callback service" for p in flow_actions.EVENT_PREFIXES}}


def engine_registry() -> Registry:
    """The interpreter's vocabulary plus ours: the platform processor and the ``cb:`` actions."""
    registry = DEFAULT_REGISTRY.copy()
    platform_io.register(registry)
    flow_actions.register(registry)
    return registry


def create_app(settings: Settings | None = None, registry: Registry | None = None,
               freeze_gc: bool = False) -> web.Application:
    settings = settings or Settings.load()
    engine = Engine(settings, registry, freeze_gc=freeze_gc)
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[json_errors, require_key, health.storage_gate,
                                       admin.unsaved_is_503])
    key_store = open_keys(settings)
    scrub_environment()  # the keys are read; subprocesses and flows must not see them
    app[SETTINGS] = settings
    app[ENGINE] = engine
    app[KEYS] = key_store
    app[INITIAL_KEY] = key_store.ensure_administrator(settings.data_dir)
    app.router.add_routes(health.routes)
    app.router.add_routes(ors.routes)
    app.router.add_routes(gms.routes)
    app.router.add_routes(notifications.routes)
    app.router.add_routes(push.routes)
    app.router.add_routes(admin.routes)
    app.router.add_routes(keys.routes)

    async def on_startup(app: web.Application) -> None:
        await engine.open(app)
        app[MANAGER] = engine.manager
        app[FLOWS] = engine.flows
        app[CALLBACKS] = engine.callbacks
        app[NOTIFICATIONS] = engine.notifications
        basic = engine.manager.processor_for("basichttp")  # type: ignore[union-attr]
        app.router.add_post("/basichttp/{sid}", basic.handle)  # no capability: 404, like a wrong one
        app.router.add_post("/basichttp/{sid}/{cap}", basic.handle)

    async def on_cleanup(app: web.Application) -> None:
        await engine.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
