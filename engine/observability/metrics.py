"""The engine's Prometheus metrics, served at ``/metrics``.

Two kinds. What the engine already holds (open callbacks by state, live sessions, the storage
writer's backlog, deliveries waiting and dead, EWT per virtual queue) is read from its parts when
Prometheus scrapes, so it costs nothing between scrapes. What happens (callbacks created and
completed, commits, deliveries, pushes, HTTP requests) is counted as it happens, each with one
dict increment or one histogram bucket: about a microsecond on the engine's hot paths, without
prometheus_client's per-call locks (the engine runs on one event loop). prometheus_client turns
both into the exposition format at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from ..callbacks.bus import CallbackBus, CallbackCompleted, CallbackCreated
from ..callbacks.service import CallbackService
from ..callbacks.vocabulary import CallbackState
from ..notifications.delivery import DEAD, Delivery, Dispatcher
from ..platform.adapter import Platform
from ..scxml import Session
from ..sessions.manager import SessionManager
from ..storage import UnitOfWork

PREFIX = "callback_engine_"
SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROWS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
COMPLETED = CallbackState.COMPLETED.value
Labels = tuple[str, ...]


class Histogram:
    """Observations in fixed buckets, per label values: one bisect and two additions each."""

    __slots__ = ("bounds", "series")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(bounds)
        self.series: dict[Labels, list[float]] = {}  # labels -> [count per bucket, count above, sum]

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.series.get(labels)
        if counts is None:
            counts = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def family(self, name: str, doc: str, label_names: list[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc, labels=label_names)
        for labels, counts in self.series.items():
            running, buckets = 0.0, []
            for bound, count in zip(self.bounds, counts, strict=False):
                running += count
                buckets.append((floatToGoString(bound), running))
            buckets.append(("+Inf", running + counts[len(self.bounds)]))
            family.add_metric(list(labels), buckets, sum_value=counts[-1])
        return family


def _count(counts: dict[Labels, int], labels: Labels) -> None:
    counts[labels] = counts.get(labels, 0) + 1


def _counter(name: str, doc: str, label_names: list[str], counts: dict[Labels, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=label_names)
    for labels, value in counts.items():
        family.add_metric(list(labels), value)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class EngineMetrics:
    """One engine's metrics: counts what happens (it subscribes where things happen) and reads
    the rest from the parts at scrape time. ``registry`` is what ``/metrics`` exposes."""

    def __init__(self, *, manager: SessionManager, callbacks: CallbackService, bus: CallbackBus,
                 dispatcher: Dispatcher, platform: Platform, queues: Callable[[], list[str]],
                 resident: Mapping[str, Callable[[], int]] | None = None) -> None:
        """``resident``: for a datamodel whose waiting sessions may let their live state go (the
        ECMAScript one drops idle contexts), how many of its sessions hold it now; the sessions of
        other datamodels always do."""
        self.manager = manager
        self.callbacks = callbacks
        self.dispatcher = dispatcher
        self.platform = platform
        self.queues = queues  # the virtual queues' names, for EWT
        self.resident = dict(resident or {})
        self.created: dict[Labels, int] = {}  # (service,)
        self.completed: dict[Labels, int] = {}  # (service, reason)
        self.deliveries: dict[Labels, int] = {}  # (type, result)
        self.pushes: dict[Labels, int] = {}  # (event, result)
        self.requests: dict[Labels, int] = {}  # (method, route, status)
        self.request_seconds = Histogram(SECONDS)  # (method, route)
        self.commit_seconds = Histogram(SECONDS)
        self.batch_rows = Histogram(ROWS)
        self.processing_seconds = Histogram(SECONDS)  # (datamodel,)
        bus.subscribe(CallbackCreated, self._created)
        bus.subscribe(CallbackCompleted, self._completed)
        manager.on_commit.append(self._committed)
        manager.on_processed.append(self._processed)
        dispatcher.on_delivered.append(self._delivered)
        dispatcher.on_failed.append(self._failed)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(namespace="", registry=self.registry)  # CPU seconds, memory, open files

    # -- what happens ----------------------------------------------------------------------
    def _created(self, event: CallbackCreated) -> None:
        _count(self.created, (event.record["_service_name"],))

    def _completed(self, event: CallbackCompleted) -> None:
        _count(self.completed, (event.record["_service_name"], str(event.reason)))

    def _committed(self, batch: UnitOfWork, seconds: float) -> None:
        rows = sum(map(len, batch.upserts.values())) + sum(map(len, batch.deletes.values()))
        self.batch_rows.observe((), rows)
        self.commit_seconds.observe((), seconds)

    def _processed(self, session: Session, seconds: float) -> None:
        self.processing_seconds.observe((session.doc.datamodel.name,), seconds)

    def _delivered(self, d: Delivery) -> None:
        _count(self.deliveries, (d.type, "delivered"))
        if d.type == "fcm":
            _count(self.pushes, (_push_event(d), "sent"))

    def _failed(self, d: Delivery) -> None:
        dead = d.status == DEAD
        _count(self.deliveries, (d.type, "dead" if dead else "retried"))
        if d.type == "fcm":
            _count(self.pushes, (_push_event(d), "failed" if dead else "retried"))

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request; ``route`` is the route's pattern, never the path itself."""
        _count(self.requests, (method, route, str(status)))
        self.request_seconds.observe((method, route), seconds)

    # -- the collector: called by prometheus_client at scrape time ----------------------------------
    def collect(self) -> Iterator[Metric]:
        p = PREFIX
        yield _counter(p + "callbacks_created", "Callbacks accepted, by service.", ["service"], self.created)
        yield _counter(p + "callbacks_completed", "Callbacks that reached COMPLETED, by service and reason.",
                       ["service", "reason"], self.completed)
        open_now = GaugeMetricFamily(p + "callbacks_open", "Callbacks not yet COMPLETED, by service and state.",
                                     labels=["service", "state"])
        for (service, state), n in Counter((r["_service_name"], r["_callback_state"])
                                           for r in self.callbacks.records.values()
                                           if r["_callback_state"] != COMPLETED).items():
            open_now.add_metric([service, state], n)
        yield open_now
        yield _gauge(p + "sessions_live", "Flow sessions running in this engine (each is held in memory).",
                     len(self.manager.sessions))
        by_kind = Counter(session.doc.datamodel.name for session in self.manager.sessions.values())
        yield _gauge(p + "sessions_hibernated",
                     "Running sessions holding no live datamodel (an ECMAScript session without a context: its "
                     "data waits as text for its next event).",
                     sum(max(0, by_kind[name] - count()) for name, count in self.resident.items()))
        yield self.processing_seconds.family(
            p + "macrostep_duration_seconds",
            "Time a session took to process what it was given (its macrosteps until it waits), by datamodel.",
            ["datamodel"])
        yield from self._storage()
        yield from self._notifications()
        yield from self._queues()
        yield _counter(p + "http_requests", "HTTP requests answered, by method, route pattern and status.",
                       ["method", "route", "status"], self.requests)
        yield self.request_seconds.family(p + "http_request_duration_seconds",
                                          "Time to answer an HTTP request, by method and route pattern.",
                                          ["method", "route"])

    def _storage(self) -> Iterator[Metric]:
        p, status = PREFIX, self.manager.writer_status()
        yield _gauge(p + "storage_persistent", "1 when the engine stores its state (persistence on).",
                     1 if status["persistent"] else 0)
        yield _gauge(p + "storage_writer_alive", "1 while the storage writer runs (or without persistence).",
                     1 if status["alive"] else 0)
        yield _gauge(p + "storage_failing", "1 while storage writes fail (they are retried).",
                     1 if status["error"] else 0)
        yield _gauge(p + "storage_backlog_age_seconds",
                     "Age of the oldest change not yet committed (0 when none waits).", status["backlog_age"])
        commits = CounterMetricFamily(p + "storage_commits", "Units of work committed.")
        commits.add_metric([], status["commits"])
        yield commits
        yield self.commit_seconds.family(p + "storage_commit_duration_seconds",
                                         "Time to write one unit of work (retries included).", [])
        yield self.batch_rows.family(p + "storage_batch_rows", "Rows written or deleted per unit of work.", [])

    def _notifications(self) -> Iterator[Metric]:
        p, queues = PREFIX, self.dispatcher.queues.values()
        yield _counter(p + "deliveries", "Delivery attempts' outcomes, by delivery type (httpcb, customhttp, "
                                         "orscb, fcm) and result (delivered, retried, dead).",
                       ["type", "result"], self.deliveries)
        yield _gauge(p + "deliveries_pending", "Deliveries waiting to be attempted (retries included).",
                     sum(map(len, queues)))
        yield _gauge(p + "deliveries_retry_waiting", "Deliveries waiting for a retry after a failed attempt.",
                     sum(1 for queue in queues for d in queue if d.attempts))
        yield _gauge(p + "dead_letters", "Deliveries given up on, kept for replay.", len(self.dispatcher.dead))
        yield _counter(p + "pushes", "FCM pushes, by event and result (sent, retried, failed).",
                       ["event", "result"], self.pushes)

    def _queues(self) -> Iterator[Metric]:
        ewt = GaugeMetricFamily(PREFIX + "ewt_seconds", "Estimated wait time for a new arrival, by virtual "
                                "queue (-1: unknown, no agent staffed).", labels=["queue"])
        waiting = GaugeMetricFamily(PREFIX + "queue_waiting", "Interactions waiting, by virtual queue.",
                                    labels=["queue"])
        for name in self.queues():
            try:
                stats = self.platform.queue_stats(name)
            except KeyError:  # removed since the list was read
                continue
            ewt.add_metric([name], stats.ewt_seconds)
            waiting.add_metric([name], stats.waiting)
        yield ewt
        yield waiting


def _push_event(d: Delivery) -> str:
    data: Any = d.message.get("data")
    return str(data.get("event", "")) if isinstance(data, dict) else ""
