"""The composition root: every part of a running engine, built once, each with what it needs.

``Runtime.build`` is the only place that knows how the parts fit together. The order is that of
the layers: storage and the clock, the platform, the interpreter's registry (with the platform
processor, the ``cb:`` actions and Basic HTTP), flows and the session manager, then the callback
bus and its parts: status notifications, the callback service, push. Notifications subscribe to
the bus before push, so a callback's status notification is queued before its push. Two links run against
that order and are made by subscription while a part is built, never by setting attributes
afterwards: a session host's platform processor attaches the host to the platform (where its
events go), and the callback service serves the report desk the ``cb:`` actions were compiled with.

``start`` opens them (restores sessions, callbacks, deliveries) and starts housekeeping; ``close``
stops them in the reverse order. The aiohttp app (``engine.app``) only builds one of these in its
cleanup context; the API reaches the parts through it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field
from functools import partial

from . import persistence
from .callbacks import flow_actions
from .callbacks.bus import CallbackBus
from .callbacks.callback_settings import CallbackSettings
from .callbacks.flow_actions import ReportDesk
from .callbacks.records import client_data
from .callbacks.service import CallbackService
from .callbacks.services import ServiceRegistry
from .logs import flush_lines
from .notifications.notifier import NotificationConfig, TransactionLists, target_problems
from .notifications.outbound_config import FILE as NOTIFICATIONS_FILE
from .notifications.outbound_config import SharedOutboundConfig
from .notifications.service import NotificationService
from .observability.lifecycle import LifecycleLog
from .observability.metrics import EngineMetrics
from .platform import adapter as platform_adapter
from .platform import ioprocessor as platform_io
from .platform.config import SimulatorConfig, load_simulator_config
from .platform.remote import STATE_KEY as REMOTE_PLATFORM_STATE
from .platform.remote import RemotePlatform
from .platform.simulator import Simulator
from .push.fcm import FcmClient
from .push.service import PushService
from .scxml import BASIC_HTTP, BasicHttpProcessor, ExecutionError, Limits, Registry, standard_registry
from .scxml.basichttp import RetryBudget
from .scxml.clock import Clock, ScaledClock
from .scxml.ecmascript import EcmaScriptDataModel, SandboxLimits
from .scxml.ecmascript.ors import OrsFacilities, OrsSources
from .scxml.events import AttrDict, Event
from .secretbox import SecretBox
from .sessions import rows as session_rows
from .sessions.cluster_clock import simulated_now
from .sessions.flows import FlowRegistry
from .sessions.manager import NoSuchSession, SessionManager
from .settings import Settings
from .shutdown import bounded_step
from .storage import Store, check_secret_key
from .storage.config_docs import CHANNEL as CONFIG_CHANNEL
from .storage.listener import Listener
from .storage.membership import EMBEDDED, Membership
from .storage.shared_config import SharedConfig

log = logging.getLogger("engine")

#: Net allocations of container objects between two collections of the youngest generation (Python's
#: default is 700). The engine makes and drops tens of thousands of objects a second (events, rows,
#: futures); at 700 the collector ran every ~16 callbacks and walked objects about to be freed
#: anyway, and it promoted them, so the older generations were walked more often too: 12 us per
#: callback (1.7 %) inside the collector in bench/callbacks.py's timed phase, 0.2 us at this.
#: The price: cyclic garbage waits a little longer, and one collection walks more at once (a few ms).
GC_YOUNG_THRESHOLD = 10_000


def tune_collector() -> None:
    """The engine process's garbage collector settings (``engine serve``; not a library user's)."""
    _young, *older = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *older)


@dataclass(eq=False)
class Runtime:
    """The parts of one engine. Build with ``Runtime.build``; every field is set from the start."""

    settings: Settings
    registry: Registry
    box: SecretBox
    store: Store | None
    clock: Clock
    platform: platform_adapter.Platform  # the embedded simulator, or the platform process (platform_url)
    simulator: Simulator | None  # None when the platform is its own process
    flows: FlowRegistry
    manager: SessionManager
    lists: TransactionLists
    services: ServiceRegistry
    queue_settings: CallbackSettings
    bus: CallbackBus
    notifications: NotificationService
    callbacks: CallbackService
    fcm: FcmClient
    push: PushService
    basichttp: BasicHttpProcessor
    metrics: EngineMetrics
    # A cluster node's lease and partitions, and its LISTEN connection (None outside a cluster).
    membership: Membership | None = None
    listener: Listener | None = None
    freeze_gc: bool = False  # the process is the engine's (engine serve): it tunes the garbage collector
    shared: SharedConfig | None = None  # a cluster's shared configuration (None: the files)
    outbound: SharedOutboundConfig | None = None  # a cluster's notifications.json (None: the file)
    started_at: float = 0.0
    _maintenance: asyncio.Task | None = field(default=None, repr=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @classmethod
    async def build(cls, settings: Settings, registry: Registry | None = None, freeze_gc: bool = False) -> Runtime:
        """``registry``: the interpreter's vocabulary to start from (tests add actions of their
        own); the engine's processors and actions are added to a copy of it."""
        s = settings
        sim_path = s.config_dir / "simulator.toml"
        sim_config = load_simulator_config(sim_path) if sim_path.is_file() else SimulatorConfig()
        box = SecretBox.for_data_dir(s.data_dir)
        store = await persistence.open_store(s.db_url) if s.persistence else None
        membership: Membership | None = None
        listener: Listener | None = None
        fcm: FcmClient | None = None
        try:
            if s.in_cluster and store is not None:
                # Built before the parts that subscribe to it or join it (the manager first); started
                # once they are open.
                listener = Listener(store.engine.url, probe_seconds=max(1.0, s.cluster_heartbeat_seconds * 2))
                membership = cluster_membership(s, store, box)
            # A cluster's configuration is shared through the database (the files are imported).
            shared = SharedConfig(store, s.node) if store is not None and s.in_cluster else None
            if shared is not None and listener is not None:  # what another node changed, served here too
                listener.subscribe(CONFIG_CHANNEL, shared.on_notice)
                listener.on_reconnect(shared.sweep)
            # One outbound URL policy (notifications.json; a cluster's shared document) for every
            # target: notifications, Basic HTTP sends of flows, FCM (its URLs are checked here).
            outbound = (SharedOutboundConfig(s.config_dir / NOTIFICATIONS_FILE, box, shared)
                        if shared is not None else None)
            notification_config = (await outbound.open() if outbound is not None
                                   else NotificationConfig.load(s.config_dir / NOTIFICATIONS_FILE, box))
            policy = notification_config.policy
            fcm = FcmClient(s.fcm_base_url, s.fcm_token_uri, policy=policy)

            def target_check(options: dict) -> list[str]:
                """A service's or list's notification target under the outbound URL policy."""
                return target_problems(options, policy)

            lists = TransactionLists(s.config_dir, check=target_check, shared=shared)
            await lists.open()
            queue_settings = CallbackSettings(s.config_dir, shared=shared)
            for problem in await queue_settings.open():
                log.error("CALLBACK_SETTINGS refused: %s", problem)
            # One clock for every timer; the simulator mode may run it faster than the wall clock.
            clock: Clock = Clock()
            stored = await store.get_value("clock") if store else None
            if membership is not None and sim_config.time_scale != 1:  # one timeline for every node
                stored = repr(await simulated_now(store, sim_config.time_scale, float(stored) if stored else None))
            remote: RemotePlatform | None = None
            simulator: Simulator | None = None
            platform: platform_adapter.Platform
            if s.platform_url:
                # The platform process keeps the clock of the queues and calls: a node adopts it.
                platform = remote = RemotePlatform(s.platform_url, s.node, key=s.platform_key)
                remote.load_state(await store.get_value(REMOTE_PLATFORM_STATE) if store else None)
                platform_clock = await remote.connect(float(stored) if stored else None, sim_config.time_scale,
                                                      timeout=s.platform_connect_timeout)
                scale, start = ((platform_clock[1], platform_clock[0]) if platform_clock
                                else (sim_config.time_scale, float(stored or 0)))
                clock = ScaledClock(scale, start=start or None) if scale != 1 else Clock()
                remote.clock = clock
            else:
                if sim_config.time_scale != 1:
                    clock = ScaledClock(sim_config.time_scale, start=float(stored) if stored else None)
                platform = simulator = Simulator(sim_config, clock)
            desk = ReportDesk()
            registry = engine_registry(registry, platform=platform, desk=desk)
            # ECMAScript flows get ORS's _genesys objects over this engine's own data (read when a
            # session's context is built; services and callbacks are bound below, before any runs);
            # _genesys.queue reads the simulator's queue figures and sends its requests as a
            # <send type="platform"> of the session does (the manager is bound below too).
            facilities = OrsFacilities(OrsSources(
                business_hours=lambda: services.hours, now=clock.now, scale=getattr(clock, "scale", 1.0),
                lists=lambda: {name: found.text for name in lists.names() if (found := lists.get(name))},
                interaction=lambda sid: virtual_interaction(callbacks, sid),
                queues=lambda: {name: platform.queue_stats(name) for name in platform.queues}))
            platform.add_listener(facilities.queue_changed)

            def queue_request(session_id: str, request: str, data: dict, request_id: str, line: int) -> None:
                session = manager.sessions.get(session_id)
                if session is None:
                    raise ExecutionError(f"line {line}: {request}: session {session_id} does not run here")
                platform_io.send_request(session, request, data, request_id, line)

            registry.register_datamodel("ecmascript", partial(
                EcmaScriptDataModel, limits=SandboxLimits(
                    cpu_seconds=s.ecmascript_cpu_seconds, memory_bytes=s.ecmascript_memory_bytes,
                    live_contexts=s.ecmascript_live_contexts, idle_seconds=s.ecmascript_idle_seconds),
                facilities=facilities, queue_facts=facilities.queue_json, platform_requests=queue_request))
            # A cluster publishes the load balancer's URL (any node forwards the event to the holder).
            registry.register_processor(BASIC_HTTP, partial(
                BasicHttpProcessor, base_url=(s.public_url.rstrip("/") or s.base_url) if s.in_cluster else s.base_url,
                key=box.derive("basichttp-capability"),
                policy=policy, retry=RetryBudget(s.basichttp_max_attempts, s.basichttp_retry_seconds)), "basichttp")
            flows = FlowRegistry(s.flows_dir, registry, store, s.flow_watch_interval, shared=shared)
            limits = Limits(max_microsteps=s.max_microsteps, max_invoke_depth=s.max_invoke_depth,
                            macrosteps_per_turn=s.macrosteps_per_turn, turn_seconds=s.turn_seconds,
                            max_foreach_items=s.max_foreach_items, max_sends_per_second=s.max_sends_per_second)
            manager = SessionManager(flows, store, registry=registry, limits=limits, clock=clock,
                                     durability_timeout=s.durability_timeout, reserved_events=reserved_events(),
                                     max_state_bytes=s.max_session_state_bytes, commit_window=s.commit_window_seconds,
                                     cluster=membership, listener=listener, audit=s.cluster_audit)
            manager.active_processors()  # built now: the platform processor attaches the host to the platform
            if remote is not None:
                remote.join_storage(manager.batch_contributors, manager.after_commit, manager.request_write)
                remote.on_restarted = lambda: tell_platform_restarted(callbacks, manager)
            # A service may name only lists and virtual queues that exist (checked on PUT, logged on load).
            services = ServiceRegistry(s.config_dir, references={
                "_callback_events_list": ("transaction list", lists.names),
                "_urs_virtual_queue": ("virtual queue", lambda: platform.queues),
            }, checks=[target_check], shared=shared)
            await services.open()
            bus = CallbackBus()
            # The callback service, built next, numbers the callbacks: their deliveries' attempt
            # rows are keyed by that serial too (looked up when a row is made, never before).
            notifications = NotificationService(manager, services, lists, notification_config, bus, listener=listener,
                                                serial_of=lambda cid: callbacks.serials.of(cid))
            callbacks = CallbackService(manager, services, queue_settings, bus, desk, platform)
            push = PushService(callbacks, bus, notifications, queue_settings, fcm, box, platform,
                               notifications.notifier.language_for, shared)
            if remote is not None and membership is not None:
                # Events of sessions another node runs are handed over to it; a claim binds its sessions'
                # events here, once every part above has adopted them (joined last).
                remote.join_cluster(membership, manager.send_to, lambda: list(manager.sessions))
            # Watching comes last: the lifecycle log and the metrics observe the parts above.
            LifecycleLog(manager=manager, callbacks=callbacks, bus=bus, dispatcher=notifications.dispatcher)
            ecmascript = registry.datamodel("ecmascript")
            resident = ({ecmascript.name: ecmascript.pool.__len__}
                        if isinstance(ecmascript, EcmaScriptDataModel) else {})
            metrics = EngineMetrics(manager=manager, callbacks=callbacks, bus=bus, dispatcher=notifications.dispatcher,
                                    platform=platform, queues=lambda: platform.queues, resident=resident)
            basichttp = manager.processor_for(BASIC_HTTP)
            if not isinstance(basichttp, BasicHttpProcessor):
                raise TypeError(f"the Basic HTTP processor of this registry is a {type(basichttp).__name__}")
        except BaseException:
            if fcm is not None:
                await fcm.close()
            if remote is not None:
                await remote.close()
            if store is not None:
                await store.close()
            raise
        return cls(settings=s, registry=registry, box=box, store=store, clock=clock, platform=platform,
                   simulator=simulator,
                   flows=flows, manager=manager, lists=lists, services=services, queue_settings=queue_settings,
                   bus=bus, notifications=notifications, callbacks=callbacks, fcm=fcm, push=push,
                   basichttp=basichttp, metrics=metrics, membership=membership, listener=listener,
                   freeze_gc=freeze_gc, shared=shared, outbound=outbound)

    async def start(self) -> None:
        """Open every part: flows, credentials, sessions, deliveries, callbacks; then housekeeping."""
        await self.flows.start()
        await self.push.open()
        await self.manager.open()
        await self.notifications.open()
        await self.callbacks.open()
        self.manager.run_restored()  # only now: their flows report to the callbacks just loaded
        self.notifications.run_restored()  # ...and their deliveries change those callbacks' records
        if self.listener is not None:
            await self.listener.start()
        if self.membership is not None:  # claims (a lone node restarting: all at once), and the parts adopt
            await self.membership.start()
            self.manager.report_adopted()
        if isinstance(self.platform, RemotePlatform):
            self.platform.started()
        self.started_at = time.time()
        if self.freeze_gc:  # what start-up built (restored sessions, flows) stays out of full collections
            gc.collect()
            gc.freeze()
            tune_collector()
        self._maintenance = asyncio.get_running_loop().create_task(self._maintain())
        log.info("engine ready: %d flows, %d sessions restored, persistence %s",
                 len(self.flows.current), len(self.manager.sessions),
                 "on (" + self.settings.db_url.split("://")[0] + ")" if self.store else "off")
        flush_lines()  # what start-up restored is on disk before the first request is answered

    async def purge(self) -> dict[str, int]:
        """Forget what ended more than ``retention_days`` ago (hourly, and on demand)."""
        assert self.store is not None
        cutoff = time.time() - self.settings.retention_days * 86400
        counts = await persistence.purge(self.store, cutoff, shared=self.membership is not None)
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
            if ticks % 12 == 0 and self.store is not None and self.membership is not None:
                try:  # a cluster's event sources, whatever the retention: they only guard against copies
                    await session_rows.forget_sources(self.store, time.time() - session_rows.SOURCES_KEPT_SECONDS)
                except Exception:
                    log.exception("forgetting old event sources failed; will try again")
            ticks += 1

    async def close(self) -> None:
        """Stop what starts work first (housekeeping, the platform's timers, callback timers), then
        the manager (its final flush: deliveries not yet done stay stored), then the rest. Safe
        after a start that failed part way."""
        if self.simulator is not None:
            self.simulator.close()
        if self._maintenance is not None:
            self._stopping.set()  # a signal, not only a cancel: a cancel can get lost in a driver
            self._maintenance.cancel()
            await asyncio.wait([self._maintenance], timeout=5)
        limit = self.settings.shutdown_timeout
        if self.membership is not None:  # gives the partitions back: written, then claimed by the others at once
            await bounded_step("leaving the cluster (partitions not given back expire with the lease)",
                               self.membership.stop(), limit)
        await bounded_step("the callback service", self.callbacks.close(), limit)
        # The final flush waits for storage up to the durability timeout before it gives up.
        await bounded_step("the session manager", self.manager.close(), limit + self.settings.durability_timeout)
        await bounded_step("the notifications", self.notifications.close(), limit)
        await bounded_step("push", self.fcm.close(), limit)
        if isinstance(self.platform, RemotePlatform):
            await bounded_step("the platform connection", self.platform.close(), limit)
        await bounded_step("the flow registry", self.flows.close(), limit)
        if self.listener is not None:
            await bounded_step("the storage listener", self.listener.close(), limit)
        if self.store is not None:
            await bounded_step("storage", self.store.close(), limit)
        log.info("engine stopped")


def cluster_membership(s: Settings, store: Store, box: SecretBox) -> Membership:
    """This node's membership: its name, how the others reach it, its platform (the embedded
    simulator only in a cluster of one), and the check that it holds the cluster's secret key."""

    async def key_check(store: Store) -> None:
        await check_secret_key(store, box.derive("cluster-key-check").hex())

    return Membership(store, s.node, lease=s.cluster_lease_seconds, heartbeat=s.cluster_heartbeat_seconds,
                      internal_url=s.internal_url or s.base_url, platform=s.platform_url or EMBEDDED,
                      key_check=key_check)


def reserved_events() -> dict[str, str]:
    """Event namespaces only the engine's own parts raise in flows; clients are refused them."""
    return {**{p: "the contact-center platform" for p in platform_adapter.EVENT_PREFIXES},
            **{p: "the callback service" for p in flow_actions.EVENT_PREFIXES}}


def tell_platform_restarted(callbacks: CallbackService, manager: SessionManager) -> None:
    """The platform process lost its queues and calls: every callback's flow hears it (stored in
    its inbox like any platform event) and queues again. In a cluster each node tells the
    callbacks of the partitions it holds."""
    for sid, cid in list(callbacks.by_session.items()):
        try:
            manager.send_to(sid, Event("platform.restarted", AttrDict(callback_id=cid), type="external",
                                       origintype=platform_io.PLATFORM_PROCESSOR))
        except NoSuchSession:  # its session has ended
            continue


def virtual_interaction(callbacks: CallbackService, session_id: str) -> dict | None:
    """The callback a session runs, as ORS's ``_genesys.ixn.interactions[0]`` of that session."""
    record = callbacks.records.get(callbacks.by_session.get(session_id) or "")
    if record is None:
        return None
    return {"id": record["_id"], "type": "callback", "media": "voice", "state": record.get("_callback_state"),
            "service": record.get("_service_name"), "customer_number": record.get("_customer_number"),
            "desired_time": record.get("_desired_time"), "udata": client_data(record)}


def engine_registry(base: Registry | None = None, *, platform: platform_adapter.Platform | None = None,
                    desk: ReportDesk | None = None) -> Registry:
    """The interpreter's vocabulary plus ours: the platform processor (sending to ``platform``)
    and the ``cb:`` actions (reporting to ``desk``). Without them, flows still compile (the CLI
    validates with this); run, their platform sends and ``cb:`` actions fail as errors."""
    registry = base.copy() if base is not None else standard_registry()
    platform_io.register(registry, platform)
    flow_actions.register(registry, desk)
    return registry
