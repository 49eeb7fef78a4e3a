"""The callback service: GMS-style callbacks, each run by a flow session (SPEC 4).

A callback is a record (``records.py``) whose state changes only through the lifecycle chart
(``lifecycle.py``). A callback with a desired time in the future is SCHEDULED and its session
starts ``_request_execution_time_buffer`` seconds before that time; an immediate one starts at
once. The flow reports progress through custom actions (``flow_actions.py``): status events and
record updates. Records and recorded events are written in the same transaction as the session
snapshots (a batch contributor of the session manager), and every scheduled item is derived from
a stored record, so a restart re-arms all of them and a late one fires late rather than never.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..ids import partition_of, random_id, random_id_in
from ..platform.adapter import Platform
from ..scxml import AttrDict, Event, Session
from ..sessions.flows import FlowError
from ..sessions.manager import SessionManager
from ..storage import StorageUnavailable, UnitOfWork
from . import event_groups, history
from . import rows as callback_rows
from .bus import (
    AttemptFailed,
    CallbackBus,
    CallbackCompleted,
    CallbackCreated,
    CallbackEnded,
    RecordUpdated,
    StatusEvent,
    StatusValues,
)
from .business_hours import time_slots
from .callback_settings import CallbackSettings
from .event_catalog import DIAL_DONE, FLOW_EVENTS, SERVICE_EVENTS
from .flow_actions import ReportDesk
from .lifecycle import (
    PROCESSING_FAILED_EVENT,
    RESCHEDULED_EVENT,
    SCHEDULED_EVENT,
    STATUS_UPDATED_EVENT,
    SUBMIT_FAILED_EVENT,
    IllegalTransition,
    Lifecycle,
    event_between,
)
from .record_index import RecordIndex, TimeIndex
from .records import (
    FLOW_REFUSED_KEYS,
    BadRequest,
    check_device,
    check_horizon,
    check_not_past,
    check_phone,
    check_storable,
    client_data,
    format_time,
    matches,
    parse_time,
    request_keys,
    service_fields,
)
from .serials import CallbackSerials
from .services import ServiceRegistry
from .shared_counts import SharedCounts
from .timers import Timers
from .vocabulary import CallbackState, CompletionReason

log = logging.getLogger("engine.callbacks")

WAITING_STATES = (CallbackState.QUEUED,)
MAX_EVENTS_PER_CALLBACK = 1000
_ABSENT = object()  # a status attribute the event has no value for


class NotFound(LookupError):
    pass


class LimitReached(RuntimeError):
    """A configured limit (capacity, queue size) refuses the request: HTTP 503."""


class CallbackService:
    def __init__(self, manager: SessionManager, services: ServiceRegistry, queue_settings: CallbackSettings,
                 bus: CallbackBus, desk: ReportDesk, platform: Platform | None = None):
        self.manager = manager
        self.bus = bus  # what notifications and push learn of callbacks (they subscribe)
        self.services = services
        self.queue_settings = queue_settings  # CALLBACK_SETTINGS: per queue dialling and purge rules
        self.platform = platform
        self.clock = manager.clock
        self.store = manager.store
        self.records: dict[str, dict[str, Any]] = {}
        self.by_session: dict[str, str] = {}
        self.events: dict[str, list[event_groups.Pending]] = {}  # kept in memory without a store
        self._dirty: dict[str, dict[str, Any]] = {}
        self._new_events: list[event_groups.Pending] = []
        self._writing_events: list[event_groups.Pending] = []  # in the batch being written
        self._event_ids = 0
        self._loading: list[set[int]] = []  # the partitions of each adoption reading its records
        self.serials = CallbackSerials(self.store, self.records)  # the key of each callback's event and history rows
        self.timers = Timers(self.clock)
        self.timers.on("submit", self._run_submit)
        self.timers.on("ttl", self._run_ttl)
        self.timers.on("purge", self._run_purge)
        # The limits' counts, kept in step with every change instead of scanning the records.
        self.waiting = RecordIndex(_waiting_in)  # records in WAITING_STATES, by service
        self.scheduled = TimeIndex(_scheduled_at)  # SCHEDULED records, by service and desired time
        self._indexes: list[RecordIndex | TimeIndex] = [self.waiting, self.scheduled]
        manager.batch_contributors.append(self._contribute)
        manager.after_commit.append(self._events_written)
        # In a cluster (PostgreSQL) this node holds the callbacks of its partitions only: it
        # loads them as it claims them (``adopt``), the limits count every node's records, and
        # every row it writes carries its callback's partition (which fences the write).
        self.cluster = manager.cluster
        self.shared: SharedCounts | None = None
        self._writing: dict[str, dict[str, Any]] = {}  # records in the batch being written (cluster)
        if self.cluster is not None and self.store is not None:
            self.shared = SharedCounts(self.store, self._unwritten)
            manager.after_commit.append(self._written)
            self.cluster.join(self)
        # State changes, each with what caused it (the console's timeline), in the same batches.
        self.history = history.HistoryLog(self.store, manager.request_write, self.clock.now,
                                          partitioned=self.cluster is not None, serial_of=self.serials.of)
        manager.batch_contributors.append(self.history.contribute)
        manager.after_commit.append(self.history.written)
        manager.on_session_end.append(self._session_ended)
        desk.serve(self)  # what the flows' <cb:notify>, <cb:update>, <cb:complete> report

    # -- lifecycle of the service itself -------------------------------------------------------
    async def open(self) -> None:
        """Load open callbacks and re-arm their schedule (in a cluster: nothing, ``adopt`` loads
        the callbacks of each partition this node claims)."""
        if self.store is None or self.cluster is not None:
            return
        self._restore(await callback_rows.load_open(self.store, known=self.serials))
        durable_platform = self.platform is not None and self.platform.durable
        for sid, cid in [] if durable_platform else list(self.by_session.items()):
            session = self.manager.sessions.get(sid)
            if session is not None and session.is_running:
                # The platform (calls, queues) did not survive the restart; let the flow recover.
                # (A platform process outlives the engine: it says itself when it restarted.)
                session.deliver(Event("platform.restarted", AttrDict(callback_id=cid)))
        log.info("callback service: %d open callbacks restored", len(self.records))

    def _restore(self, records: list[dict[str, Any]]) -> None:
        """Take over stored open records: track them, map their sessions, arm their schedule; one
        whose session is gone (ended while nobody held it, or never stored) fails."""
        restored = []
        for record in records:
            if record["_id"] in self.records:  # made here since (a partition claimed, then adopted)
                continue
            self.records[record["_id"]] = record
            restored.append(record)
            self._track(record)
            sid = record.get("_ors_session_id")
            if sid:
                self.by_session[sid] = record["_id"]
            self._arm(record)
        orphans = [r for r in restored
                   if r["_callback_state"] not in (CallbackState.SCHEDULED, CallbackState.COMPLETED)
                   and r.get("_ors_session_id") not in self.manager.sessions]
        for record in orphans:  # its session ended while we were down, never got stored, or cannot be read
            if record["_callback_state"] == CallbackState.QUEUED:
                self._resubmit(record)
            else:
                self._complete(record, CompletionReason.FAIL_ERROR, notify_failure="the callback's session is gone",
                               source=history.RESTART)

    async def close(self) -> None:
        self.timers.cancel_all()

    # -- a cluster's partitions (PartitionParticipant) ------------------------------------------
    async def adopt(self, partitions: dict[int, int]) -> None:
        """This node claimed ``partitions``: load their open callbacks and arm their timers (the
        session manager, which joined first, has restored their sessions already)."""
        loading = set(partitions)
        self._loading.append(loading)
        try:
            records = await callback_rows.load_open(self.store, sorted(partitions), self.serials)  # type: ignore[arg-type]
        finally:
            self._loading = [other for other in self._loading if other is not loading]
        # A partition dropped while its records were read (the node fenced itself) is not taken
        # in: its sessions went with the drop, and each of its callbacks would be failed as "the
        # callback's session is gone", its failure notified, while the next holder runs it on.
        records = [r for r in records if partition_of(r["_id"]) in loading]
        self._restore(records)
        if records:
            log.info("callback service: %d open callbacks of %d partitions adopted", len(records), len(partitions))

    async def release(self, partitions: dict[int, int]) -> None:
        """This node gives ``partitions`` back: their callbacks leave memory and their timers
        stop; what changed is written (while the partitions are still held) before they go."""
        self._forget(set(partitions))
        await self.manager.commit()

    def drop(self, partitions: set[int]) -> None:
        """This node no longer holds ``partitions``: forget their callbacks without writing."""
        for loading in self._loading:
            loading -= partitions
        self._forget(partitions)
        self._dirty = {cid: r for cid, r in self._dirty.items() if partition_of(cid) not in partitions}
        self._new_events = [e for e in self._new_events if partition_of(e[0]) not in partitions]
        self.history.drop(partitions)

    def _forget(self, partitions: set[int]) -> None:
        gone = [cid for cid in self.records if partition_of(cid) in partitions]
        for cid in gone:
            del self.records[cid]
            self._disarm(cid)
            for index in self._indexes:
                index.forget(cid)
        for sid, cid in list(self.by_session.items()):
            if partition_of(cid) in partitions:
                del self.by_session[sid]

    def _unwritten(self) -> list[dict[str, Any]]:
        """Records whose change the database does not hold yet (the shared limits count them)."""
        return [*self._dirty.values(), *self._writing.values()]

    def _written(self) -> None:
        self._writing = {}

    def _events_written(self) -> None:
        """An after-commit hook: the event rows of the batch just written are in the store now."""
        self._writing_events = []

    def _here(self, record: dict[str, Any]) -> None:
        """A change of ``record`` must be made by the node holding it: in a cluster another
        node's callback is refused (503: the API forwards such requests to its holder)."""
        if self.cluster is not None and self.records.get(record["_id"]) is not record:
            raise StorageUnavailable(f"callback {record['_id']} is held by another node of the cluster; retry")

    def add_index(self, index: RecordIndex | TimeIndex) -> None:
        """Keep ``index`` in step with every record change from now on (push groups its
        waiting records by queue this way); the records already in memory are added at once."""
        self._indexes.append(index)
        for record in self.records.values():
            index.track(record)

    def _track(self, record: dict[str, Any]) -> None:
        for index in self._indexes:
            index.track(record)

    # -- the REST operations --------------------------------------------------------------
    def service(self, name: str) -> dict[str, Any]:
        try:
            return self.services.get(name)
        except KeyError:
            raise NotFound(f"unknown callback service {name!r}") from None

    async def create(self, service_name: str, params: dict[str, Any]) -> dict[str, Any]:
        options = self.service(service_name)
        service_name = sys.intern(service_name)  # a known name, held by each of its records: one copy
        number = check_phone(params.get("_customer_number"))
        check_device(params)
        now = self.clock.now()
        if params.get("_desired_time") not in (None, ""):
            desired = parse_time(params["_desired_time"], "_desired_time")
            check_not_past("_desired_time", desired, now, self.clock.scale)
            check_horizon(desired, now, options["_desired_time_horizon_days"], "_desired_time")
            desired = max(desired, now)
        else:
            desired = now
        keys = request_keys(params, options, allow_empty=False)
        self.bus.check_create(service_name, keys)  # e.g. the outbound URL policy on the target
        target = keys.get("_status_notification_target")
        if isinstance(target, str) and target and await self.runs_session_anywhere(target):
            raise BadRequest("_status_notification_target names the session of a callback: events cannot be "
                             "sent into another callback's flow")
        self._check_hours(options, desired)
        scheduled = desired - options["_request_execution_time_buffer"] > now
        if scheduled:
            await self._check_capacity(service_name, options, desired)
        else:
            await self._check_queue(service_name, options)
        partition = self.manager.placement() if self.cluster is not None else None
        cid = random_id() if partition is None else random_id_in(partition)
        record: dict[str, Any] = {
            **keys,
            "_id": cid,
            "_service_name": service_name,
            "_customer_number": number,
            "_callback_state": CallbackState.SCHEDULED.value,  # records hold plain strings
            "_desired_time": format_time(desired),
            "_expiration_time": format_time(desired + options["_ttl"]),
            "_created_time": format_time(now),
            "_call_direction": keys.get("_call_direction", options["_call_direction"]),
            "_urs_virtual_queue": keys.get("_urs_virtual_queue", options["_urs_virtual_queue"]),
        }
        self.records[cid] = record
        self.serials.new(cid)
        self.bus.publish(CallbackCreated(record))
        if scheduled:
            self._lifecycle(record, history.API_CREATE).created()
            self._arm(record)
        else:
            self._submit(record, history.API_CREATE)
            self._arm(record)
        self.mark(record)
        await self.manager.commit(parts=None if partition is None else (partition,))
        return record

    async def get(self, cid: str) -> dict[str, Any]:
        record = self.records.get(cid)
        if record is None and self.store is not None:
            record = await callback_rows.get_record(self.store, cid)
        if record is None:
            raise NotFound(f"no callback {cid!r}")
        return record

    async def query(self, filters: dict[str, str], service: str | None = None) -> list[dict[str, Any]]:
        if "_id" in filters and not filters["_id"].startswith("!"):
            try:
                found = [await self.get(filters["_id"])]
            except NotFound:
                return []
        elif self.store is not None:
            state = filters.get("_callback_state")
            rows = await callback_rows.find(
                self.store, service=service,
                states=[state] if state and not state.startswith("!") else None,
                not_state=state[1:] if state and state.startswith("!") else None,
                customer_number=filters.get("_customer_number") if not
                filters.get("_customer_number", "!").startswith("!") else None,
            )
            found = [self.records.get(r["id"]) or json.loads(r["record"]) for r in rows]
        else:
            found = list(self.records.values())
        return [r for r in found if (service is None or r["_service_name"] == service) and matches(r, filters)]

    async def cancel(self, service_name: str, cid: str) -> dict[str, Any]:
        record = await self.owned(service_name, cid)
        if record["_callback_state"] == CallbackState.COMPLETED:
            raise BadRequest(f"callback {cid} is already COMPLETED ({record.get('_callback_reason')}); "
                             f"only callbacks not yet completed can be cancelled")
        self._here(record)
        self._lifecycle(record, history.API_CANCEL).cancel()
        self._end_flow(record, CompletionReason.CANCELLED)
        self.mark(record)
        await self.manager.commit(parts=self._parts_of(cid))
        return record

    async def reschedule(self, service_name: str, cid: str, params: dict[str, Any]) -> dict[str, Any]:
        record = await self.owned(service_name, cid)
        options = self.service(service_name)
        if record["_callback_state"] == CallbackState.COMPLETED:
            raise BadRequest(f"callback {cid} is COMPLETED and cannot be changed")
        self._here(record)
        new_time = params.get("_new_desired_time")
        keys = request_keys(params, options, allow_empty=True)
        if new_time in (None, "") and not keys:
            raise BadRequest("nothing to change: give _new_desired_time and/or keys to update")
        if keys:  # as at creation: the outbound URL policy on a new target, never another callback's session
            updated = {k: v for k, v in {**record, **keys}.items() if v != ""}
            self.bus.check_create(service_name, updated)
            target = keys.get("_status_notification_target")
            if isinstance(target, str) and target and await self.runs_session_anywhere(target):
                raise BadRequest("_status_notification_target names the session of a callback: events cannot be "
                                 "sent into another callback's flow")
        desired = None
        if new_time not in (None, ""):
            self._check_reschedulable(record)
            now = self.clock.now()
            desired = parse_time(new_time, "_new_desired_time")
            check_not_past("_new_desired_time", desired, now, self.clock.scale)
            check_horizon(desired, now, options["_desired_time_horizon_days"], "_new_desired_time")
            desired = max(desired, now)
            self._check_hours(options, desired)
            await self._check_capacity(service_name, options, desired, exclude=cid)
        # Checked again after the last await, with nothing changed before: meanwhile the callback
        # may have been submitted (its flow started), or completed, or its partition dropped (a
        # change made to a record this node no longer holds would be left out of every batch and
        # still answered 200).
        self._here(record)
        if record["_callback_state"] == CallbackState.COMPLETED:
            raise BadRequest(f"callback {cid} is COMPLETED and cannot be changed")
        if desired is not None:
            self._check_reschedulable(record)
        session = self.manager.sessions.get(record.get("_ors_session_id") or "")
        running = session is not None and session.is_running
        fixed = sorted(k for k in keys if k in FIXED_ONCE_STARTED and keys[k] != record.get(k))
        if fixed and running:
            raise BadRequest(f"{', '.join(fixed)} cannot be changed once the callback's flow has started "
                             f"(it is {record['_callback_state']}); the flow was started with the value it has")
        for key, value in keys.items():
            if value == "":
                record.pop(key, None)
            else:
                record[key] = value
        changed = dict(keys)
        if desired is not None:
            record["_desired_time"] = changed["_desired_time"] = format_time(desired)
            record["_expiration_time"] = changed["_expiration_time"] = format_time(desired + options["_ttl"])
            self._lifecycle(record, history.API_RESCHEDULE).reschedule()
            self._arm(record)
        elif keys and running:
            # what changed, and the client's keys as they are now (the flow's _data)
            session.deliver(Event("cb.updated", AttrDict(keys=dict(keys), _data=client_data(record))))  # type: ignore[union-attr]
        self.bus.publish(RecordUpdated(record, changed))  # e.g. notifications follow a new target
        self.mark(record)
        await self.manager.commit(parts=self._parts_of(record["_id"]))
        return record

    @staticmethod
    def _check_reschedulable(record: dict[str, Any]) -> None:
        if record["_callback_state"] != CallbackState.SCHEDULED:
            raise BadRequest(f"callback {record['_id']} is {record['_callback_state']}; "
                             f"only SCHEDULED callbacks can be rescheduled")

    def _parts_of(self, cid: str) -> tuple[int, ...] | None:
        """The partition a change of callback ``cid`` lies in, for the commit's wait (cluster)."""
        return None if self.cluster is None else (partition_of(cid),)

    async def availability(self, service_name: str, start: str | None, end: str | None,
                           days: str | None, max_slots: str | None) -> dict[str, int]:
        options = self.service(service_name)
        now = self.clock.now()
        t0 = parse_time(start, "start") if start else now
        check_horizon(t0, now, options["_desired_time_horizon_days"], "start")
        n_days = _int_param(days, "number-of-days", 1, 1, 31)
        t1 = parse_time(end, "end") if end else t0 + n_days * 86400
        if t1 <= t0:
            raise BadRequest("end must be after start")
        if t1 - t0 > 31 * 86400:
            raise BadRequest("availability covers at most 31 days")
        limit = _int_param(max_slots, "max-time-slots", 1000, 1, 10000)
        bucket = options["_request_time_bucket"]
        hours = self.services.business_hours(options)
        size = bucket * 60
        first = max(t0, now) // size * size  # the bucket that holds the start counts too
        slots = time_slots(_dt(first), _dt(t1), bucket, hours)[:limit]
        cap = options["_max_request_by_time_bucket"]
        free = {}
        if self.shared is not None and slots:  # a cluster: every node's records, one query
            first_slot, last_slot = int(slots[0].timestamp()), int(slots[-1].timestamp())
            taken = await self.shared.scheduled_per_bucket(service_name, first_slot, last_slot + size, size)
            return {format_time(begins): max(0, cap - taken.get(begins // size, 0))
                    for begins in (int(slot.timestamp()) for slot in slots)}
        for slot in slots:
            begins = int(slot.timestamp())
            free[format_time(begins)] = max(0, cap - self.scheduled.count_between(service_name, begins, begins + size))
        return free

    async def position(self, cid: str) -> dict[str, Any]:
        record = await self.get(cid)
        state = record["_callback_state"]
        if state in (CallbackState.SCHEDULED, CallbackState.COMPLETED):
            raise BadRequest(f"callback {cid} is {state}; it is not waiting in a queue")
        found = self.platform.position(record.get("_ors_session_id")) if self.platform else None
        now = self.clock.now()
        if found is None:
            return {"_id": cid, "_position": 0, "_total_waiting": 0, "ewt": -1, "_eta": None,
                    "_callback_state": state}
        ewt = found.ewt_seconds
        return {"_id": cid, "_position": found.position, "_total_waiting": found.total_waiting,
                "ewt": ewt, "_eta": format_time(now + ewt) if ewt >= 0 else None, "_callback_state": state}

    async def events_of(self, service_name: str, cid: str) -> list[dict[str, Any]]:
        await self.owned(service_name, cid)
        return [r["data"] for r in await self.event_rows(cid)]

    async def event_rows(self, cid: str) -> list[dict[str, Any]]:
        """A callback's recorded status events (``id``, ``name``, ``data``: the message,
        ``created_at``), oldest first, those not yet written included; any service. Memory is
        read first, at one instant, then the store (``Store.as_of``): the rows of the batch being
        written were in neither place while it was written, and a batch committed during the read
        showed its rows twice."""
        if self.store is None:
            return event_groups.expand_pending(self.events.get(cid, []))
        mark = self.store.id_mark()
        unwritten = event_groups.expand_pending([e for e in (*self._writing_events, *self._new_events) if e[0] == cid])
        return self.store.as_of(mark, await event_groups.events_of(self.store, cid), unwritten)

    # -- checks ---------------------------------------------------------------------------
    def _check_hours(self, options: dict[str, Any], desired: float) -> None:
        hours = self.services.business_hours(options)
        if hours is None:
            return
        when = _dt(desired)
        if not hours.is_open(when):
            nxt = hours.next_open(when)
            hint = f"; next opening {format_time(nxt.timestamp())}" if nxt else "; the service never opens"
            raise BadRequest(f"{format_time(desired)} is outside the business hours of "
                             f"{options['_business_hours_service']}{hint}")

    async def _check_capacity(self, service_name: str, options: dict[str, Any], desired: float,
                              exclude: str | None = None) -> None:
        size = options["_request_time_bucket"] * 60
        start = int(desired // size * size)
        if self.shared is not None:
            taken = await self.shared.scheduled_between(service_name, start, start + size, exclude=exclude)
        else:
            taken = self.scheduled.count_between(service_name, start, start + size, exclude=exclude)
        if taken >= options["_max_request_by_time_bucket"]:
            raise LimitReached(f"the time slot {format_time(start)} of {service_name} is full "
                               f"({taken} of {options['_max_request_by_time_bucket']}); see availability")

    async def _check_queue(self, service_name: str, options: dict[str, Any]) -> None:
        if self.shared is not None:
            waiting = sum([await self.shared.waiting(service_name, state) for state in WAITING_STATES])
        else:
            waiting = self.waiting.count(service_name)
        if waiting >= options["_max_queued_callbacks_per_service"]:
            raise LimitReached(f"{service_name} already has {waiting} queued callbacks "
                               f"(_max_queued_callbacks_per_service); try again later")

    async def owned(self, service_name: str, cid: str) -> dict[str, Any]:
        self.service(service_name)
        record = await self.get(cid)
        if record["_service_name"] != service_name:
            raise NotFound(f"no callback {cid!r} in service {service_name!r}")
        return record

    # -- scheduling -----------------------------------------------------------------------------
    def _arm(self, record: dict[str, Any]) -> None:
        cid = record["_id"]
        options = self.services.options.get(record["_service_name"])
        if options is None or record["_callback_state"] == CallbackState.COMPLETED:
            return
        if record["_callback_state"] == CallbackState.SCHEDULED:
            # One timer while it waits (tens of thousands may): its TTL runs out only after its
            # submit time, so the TTL is armed when it is submitted (``_run_submit``).
            due = parse_time(record["_desired_time"], "") - options["_request_execution_time_buffer"]
            self.timers.arm("submit", cid, due)
            self.timers.cancel("ttl", cid)
            return
        purge = self.queue_settings.purge_seconds(record.get("_urs_virtual_queue", ""))
        if purge and record.get("_submitted_time") and record["_callback_state"] != CallbackState.SCHEDULED:
            due = parse_time(record["_submitted_time"], "") + purge
            self.timers.arm("purge", cid, due)
        expiry = parse_time(record["_expiration_time"], "")
        self.timers.arm("ttl", cid, expiry)

    def _disarm(self, cid: str) -> None:
        for kind in ("submit", "ttl", "purge"):
            self.timers.cancel(kind, cid)

    def _held_back(self, kind: str, cid: str) -> bool:
        """In a cluster, a timer of a partition that is being adopted or given back waits a
        heartbeat: its sessions may not be here (yet, or any more). Given back, the wait is
        cancelled with the record; adopted, it fires then."""
        if self.cluster is None or partition_of(cid) in self.cluster.adopted:
            return False
        self.timers.arm(kind, cid, self.clock.now() + self.cluster.heartbeat * self.clock.scale)
        return True

    def _run_submit(self, cid: str) -> None:
        record = self.records.get(cid)
        if record is None or record["_callback_state"] != CallbackState.SCHEDULED:
            return
        if self._held_back("submit", cid):
            return
        self._submit(record, history.TIMER_SUBMIT)
        self._arm(record)  # its TTL (and purge) from now on
        self.mark(record)

    def _run_purge(self, cid: str) -> None:
        record = self.records.get(cid)
        if record is None or record["_callback_state"] in (CallbackState.COMPLETED, CallbackState.SCHEDULED):
            return
        if self._held_back("purge", cid):
            return
        log.info("callback %s purged after waiting its queue's purge time", cid)
        self._complete(record, CompletionReason.PURGED, source=history.TIMER_PURGE)

    def _run_ttl(self, cid: str) -> None:
        record = self.records.get(cid)
        if record is None or record["_callback_state"] == CallbackState.COMPLETED:
            return
        if self._held_back("ttl", cid):
            return
        log.info("callback %s expired (TTL)", cid)
        self._complete(record, CompletionReason.FAIL_TIMEOUT_TTL, source=history.TIMER_TTL)

    # -- the flow session -----------------------------------------------------------------------
    def _submit(self, record: dict[str, Any], source: str) -> None:
        options = self.services.get(record["_service_name"])
        extra = self.queue_settings.dial_options(record.get("_urs_virtual_queue", ""))
        # The client's keys reach the flow only as the dict _data: never as variables of their own,
        # which could shadow a builtin, a system name or a service option the flow relies on.
        data = {**options, **service_fields(record), **extra, "_service_id": record["_id"],
                "_desired_time": record["_desired_time"], "_data": client_data(record)}
        data.pop("_callback_state", None)
        lifecycle = self._lifecycle(record, source)
        if record["_callback_state"] == CallbackState.SCHEDULED:
            lifecycle.submit()  # submitted (and queued) before the flow reports anything
        def owned(started: Session) -> None:  # mapped before its first macrostep reports anything
            self.by_session[started.id] = record["_id"]

        # In a cluster the session goes in its callback's partition: one node holds both.
        placed = {} if self.cluster is None else {"partition": partition_of(record["_id"])}
        try:
            session = self.manager.start_flow(options["_service"], data, before_start=owned, **placed)
        except (FlowError, ValueError) as e:
            log.error("callback %s: cannot start flow %r: %s", record["_id"], options["_service"], e)
            lifecycle.submit_failed(str(e))
            self._complete(record, CompletionReason.FAIL_ERROR, source=source, detail=str(e))
            return
        record["_ors_session_id"] = session.id
        record["_submitted_time"] = format_time(self.clock.now())
        self.by_session[session.id] = record["_id"]
        purge = self.queue_settings.purge_seconds(record.get("_urs_virtual_queue", ""))
        if purge:
            self.timers.arm("purge", record["_id"], self.clock.now() + purge)
        if not session.is_running and record["_callback_state"] != CallbackState.COMPLETED:
            self._session_ended(session)

    def _resubmit(self, record: dict[str, Any]) -> None:
        """A waiting callback whose session is gone: no agent has it yet, so a new session of
        its service's flow takes it over (``_cbe_on_callback_resubmitted``, as GMS resubmits a
        callback to ORS) rather than the customer losing the callback. The new flow starts
        from the beginning, as the default flow does after ``platform.restarted``."""
        gone = record.get("_ors_session_id")
        self.by_session.pop(gone or "", None)
        if gone and self.platform is not None:  # whatever the platform still holds for it is let go
            try:
                self.platform.drop(gone)
            except Exception:
                log.exception("platform drop failed for %s", gone)
        if record["_service_name"] not in self.services.options:  # removed while the engine was down
            self._complete(record, CompletionReason.FAIL_ERROR, source=history.RESTART,
                           notify_failure=f"the callback's session is gone and its service "
                                          f"{record['_service_name']!r} no longer exists")
            return
        log.warning("callback %s: its session %s is gone; resubmitted to a new session of its flow",
                    record["_id"], gone)
        self.history.state_changed(record["_id"], record["_callback_state"], record["_callback_state"], None,
                                   history.RESTART, f"resubmitted: its session {gone} was gone")
        self._lifecycle(record, history.RESTART).resubmitted()
        self._submit(record, history.RESTART)
        self.mark(record)

    def _end_flow(self, record: dict[str, Any], reason: str) -> None:
        """Ask the flow to wind down (release platform resources, report its exit)."""
        self._disarm(record["_id"])
        session = self.manager.sessions.get(record.get("_ors_session_id") or "")
        if session is not None and session.is_running:
            session.deliver(Event("cb.cancel", AttrDict(reason=str(reason))))
        else:
            self._ended(record)

    def _ended(self, record: dict[str, Any]) -> None:
        """The callback and its flow are both over: what was subscribed for it goes."""
        self.bus.publish(CallbackEnded(record))

    def _complete(self, record: dict[str, Any], reason: str, notify_failure: str | None = None,
                  source: str = history.FLOW, detail: str | None = None) -> None:
        """``source``, ``detail``: what caused it and why, for the callback's history."""
        if record["_callback_state"] == CallbackState.COMPLETED:
            return
        lifecycle = self._lifecycle(record, source, detail)
        if notify_failure:
            lifecycle.processing_failed(notify_failure)
        lifecycle.complete(reason)
        self._end_flow(record, reason)
        self.mark(record)

    def _session_ended(self, session: Session) -> None:
        cid = self.by_session.pop(session.id, None)
        if self.platform is not None:
            try:
                self.platform.drop(session.id)
            except Exception:
                log.exception("platform drop failed for %s", session.id)
        record = self.records.get(cid) if cid else None
        if record is None:
            return
        if record["_callback_state"] == CallbackState.COMPLETED:
            self._ended(record)
            if self.store is not None:
                self.records.pop(record["_id"], None)
            return
        why = session.error or f"the flow ended in {session.final_state!r} without completing the callback"
        log.warning("callback %s: %s", cid, why)
        self._complete(record, CompletionReason.FAIL_ERROR, notify_failure=why)

    def runs_session(self, session_id: Any) -> bool:
        """Whether ``session_id`` is the session of a callback: events from outside (a status
        notification target, a subscription) must not be sent into another callback's flow."""
        return session_id in self.by_session

    async def runs_session_anywhere(self, session_id: Any) -> bool:
        """``runs_session`` on any node: in a cluster, another node's callback sessions are
        found in the database (``callbacks(session_id)``)."""
        if self.runs_session(session_id):
            return True
        if self.cluster is None or self.store is None or not isinstance(session_id, str) or not session_id:
            return False
        return await callback_rows.is_session_of_callback(self.store, session_id)

    # -- what flows call (custom actions) -----------------------------------------------------
    def record_for(self, session: Session) -> dict[str, Any] | None:
        """The record of a session this service started (or of its invoking parent); never one a
        session merely names in its data, or a session started through the session API could
        write any callback's record."""
        cid = self.by_session.get(session.id)
        record = self.records.get(cid) if cid is not None else None
        if record is None and session.parent is not None:
            return self.record_for(session.parent)
        return record

    def flow_event(self, session: Session, name: str, extra: dict[str, Any] | None = None) -> None:
        record = self.record_for(session)
        if record is None:
            log.warning("session %s fired %s but runs no callback", session.id, name)
            return
        attrs = FLOW_EVENTS.get(name, ())
        values = StatusValues(extra or {}, session.datamodel, record)
        self._record_event(record, name, attrs, values)
        if name == DIAL_DONE and values.get("c_call_result") not in (0, None):
            self.bus.publish(AttemptFailed(record, int(values.get("c_call_num_attempt") or 0),
                                           int(values.get("_max_dial_attempts") or 1)))

    def flow_update(self, session: Session, state: str | None, reason: str | None,
                    keys: dict[str, Any]) -> None:
        record = self.record_for(session)
        if record is None:
            raise IllegalTransition(f"session {session.id} runs no callback")
        refused = sorted(k for k in keys if k in FLOW_REFUSED_KEYS)
        if refused:  # e.g. _callback_state past the lifecycle, or another _id
            raise IllegalTransition(f"a flow cannot set {', '.join(refused)}: the callback service keeps "
                                    "them (the state changes with state=..., the times with the API)")
        for key, value in keys.items():
            check_storable(value, f"record key {key!r}")
        for key, value in keys.items():
            record[key] = value
        if keys:
            self.bus.publish(RecordUpdated(record, keys))
        if reason is not None:
            if record["_callback_state"] != CallbackState.COMPLETED:
                self._lifecycle(record).complete(reason)
                self._disarm(record["_id"])
        elif state is not None and state != record["_callback_state"]:
            if record["_callback_state"] == CallbackState.COMPLETED:
                return  # cancelled or expired meanwhile: the flow is winding down
            event = event_between(record["_callback_state"], state)
            if event is None:
                raise IllegalTransition(f"a flow cannot move a callback from {record['_callback_state']} to {state}")
            self._lifecycle(record).apply(event)
        self.mark(record)

    # -- recording ----------------------------------------------------------------------------
    def _lifecycle(self, record: dict[str, Any], source: str = history.FLOW, detail: str | None = None) -> Lifecycle:
        """The record's lifecycle; its state changes go into the history as caused by ``source``
        (``detail``: why, when the caller knows better than the lifecycle's failure events)."""
        why = [detail]

        def listener(event_name: str, details: dict[str, Any]) -> None:
            to_state = details.get("to_state")
            if event_name in (SUBMIT_FAILED_EVENT, PROCESSING_FAILED_EVENT):
                why[0] = why[0] or details.get("reason")
            elif event_name in (STATUS_UPDATED_EVENT, SCHEDULED_EVENT):
                self.history.state_changed(record["_id"], details.get("from_state"), to_state,
                                           details.get("reason"), source, why[0])
            elif event_name == RESCHEDULED_EVENT:
                self.history.state_changed(record["_id"], details.get("from_state"), to_state, None, source,
                                           f"desired time {record.get('_desired_time')}")
            if to_state and to_state != record["_callback_state"]:  # the first of the change's events
                record["_callback_state"] = to_state
                if to_state == CallbackState.COMPLETED:
                    record["_callback_reason"] = details.get("reason")
                    record["_completed_time"] = format_time(self.clock.now())
                self._track(record)
            # A service event's attributes are the record's (``_record_event`` reads it), and its
            # queue under the seed's name: not a copy of the record for each of a callback's events.
            self._record_event(record, event_name, SERVICE_EVENTS.get(event_name, ()),
                               {"_v_queue": record.get("_urs_virtual_queue")})
            if to_state == CallbackState.COMPLETED and event_name == STATUS_UPDATED_EVENT:
                self.bus.publish(CallbackCompleted(record, record["_callback_reason"]))

        return Lifecycle(record["_callback_state"], listener)

    def _record_event(self, record: dict[str, Any], name: str, attrs: tuple[str, ...],
                      values: Mapping[str, Any]) -> None:
        """Record status event ``name`` and publish it; each of ``attrs`` is taken from ``values``,
        else from the record (as the notifier's message takes them)."""
        now = self.clock.now()
        cid = record["_id"]
        message: dict[str, Any] = {
            "event_id": name,
            "timestamp": str(int(now)),
            "_service_id": cid,
            "_service_name": record["_service_name"],
            "_callback_state": record["_callback_state"],
        }
        for attr in attrs:
            if attr not in message:
                value = values.get(attr, _ABSENT)
                if value is _ABSENT:
                    value = record.get(attr, _ABSENT)
                if value is not _ABSENT:
                    message[attr] = value
        if self.store is None:
            self._event_ids += 1
            event = event_groups.pending(cid, None, self._event_ids, now, name, message)
        else:
            event = event_groups.pending(cid, self.serials.of(cid), self.store.new_id(), now, name, message)
        self.bus.publish(StatusEvent(record, name, values, record.get("_ors_session_id")))
        if self.store is None:
            bucket = self.events.setdefault(record["_id"], [])
            if len(bucket) < MAX_EVENTS_PER_CALLBACK:
                bucket.append(event)
        else:
            self._new_events.append(event)
            self.manager.request_write()

    def mark(self, record: dict[str, Any]) -> None:
        record["_updated_time"] = format_time(self.clock.now())
        self._track(record)
        self._dirty[record["_id"]] = record
        self.manager.request_write()

    def _contribute(self, batch: UnitOfWork) -> None:
        if self.cluster is not None:
            self._contribute_partitioned(batch)
            return
        records = batch.rows(callback_rows.CALLBACKS)
        for cid, record in self._dirty.items():
            records.append(callback_rows.record_row(record, self.serials.of(cid)))
            # A completed record leaves memory once its flow has wound down (it may still report).
            if (record["_callback_state"] == CallbackState.COMPLETED
                    and record.get("_ors_session_id") not in self.by_session):
                self.records.pop(cid, None)
        batch.add(event_groups.CALLBACK_EVENT_GROUPS, event_groups.rows(self._new_events))
        self._dirty = {}
        self._writing_events, self._new_events = self._new_events, []

    def _contribute_partitioned(self, batch: UnitOfWork) -> None:
        """``_contribute`` on a cluster node: each row with its callback's partition, and the
        records being written kept until the commit (the shared limits count them from memory)."""
        records = batch.rows(callback_rows.CLUSTER_CALLBACKS)
        for cid, record in self._dirty.items():
            row = callback_rows.record_row(record, self.serials.of(cid))
            row["part"] = partition_of(cid)
            records.append(row)
            if (record["_callback_state"] == CallbackState.COMPLETED
                    and record.get("_ors_session_id") not in self.by_session):
                self.records.pop(cid, None)
        # Each event row with its callback's partition too: the fence covers it, and a refused
        # partition's events are left out with its record change (``fencing.strip``).
        groups = event_groups.rows(self._new_events)
        for row in groups:
            row["part"] = partition_of(row["callback_id"])
        batch.add(event_groups.CALLBACK_EVENT_GROUPS, groups)
        self._writing.update(self._dirty)
        self._dirty = {}
        self._writing_events, self._new_events = self._new_events, []


#: Request options a running flow was started with (start parameters): changing them on the record
#: afterwards would leave the flow and the record disagreeing (push would watch another queue).
FIXED_ONCE_STARTED = frozenset({"_call_direction", "_urs_virtual_queue"})


def _waiting_in(record: dict[str, Any]) -> str | None:
    return record["_service_name"] if record["_callback_state"] in WAITING_STATES else None


def _scheduled_at(record: dict[str, Any]) -> tuple[str, float] | None:
    if record["_callback_state"] != CallbackState.SCHEDULED:
        return None
    return record["_service_name"], parse_time(record["_desired_time"], "_desired_time")


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _int_param(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)  # type: ignore[arg-type]
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {raw!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}")
    return value
