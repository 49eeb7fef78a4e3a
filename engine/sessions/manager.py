"""The session manager: many sessions of many flows, persisted so that none is ever lost.

Durability model. After every macrostep a session is marked dirty. A single writer task turns
everything dirty into one batch and commits it in one transaction: the snapshots, the events
that left sessions for other sessions (``inbox`` rows) and the effects that leave the engine
(``outbox`` rows). Nothing that left a session is released before the commit that holds the
sender's new state, so a crash can never keep one without the other:

* an event for another session is delivered only after that commit, and its inbox row is
  deleted in the commit of the receiver's snapshot that holds (or has processed) it; after a
  crash, undeleted rows are delivered again, so every event is applied exactly once;
* an effect is carried out after that commit and its outbox row deleted once done; after a
  crash, undone effects are carried out again (at least once);
* a delayed send lives in its session's snapshot with its absolute due time.

While one batch is being written the next one accumulates, so the commit rate follows the
load (group commit). Callers that must answer only once their work is durable (the HTTP API)
await ``commit()``, which gives up after ``durability_timeout`` seconds with
``StorageUnavailable`` (the API answers 503) instead of hanging while the database is down.

The writer must never die: a session whose state cannot be encoded (nested too deeply, say)
is failed with the cause and stored without its data; a contributor that raises is logged and
the batch goes on; a write that fails is retried with backoff, everything kept in memory,
while ``writer_status()`` tells the readiness check what is wrong.

In a cluster on PostgreSQL (issue 14; ``cluster`` is the node's ``Membership``) the manager is the
first ``PartitionParticipant``: ``open`` restores nothing, each claimed partition is adopted (its
sessions, its inbox rows taken at the held epoch, its outbox rows, in that order) and a released
or lost one forgotten. Each session lives in a partition (``SessionInfo.part``: its id's, which
``start_flow(partition=...)`` and ``placement()`` choose; an invoked child is placed in its
parent's). Each batch is fenced: it commits only while this node holds the partitions it writes
at the epochs it claimed them (``engine/sessions/fencing.py``); a refused batch (``Fenced``) makes
the node forget those partitions, answers that batch's waiters with 503 and writes the rest. An
event for a session of another node's partition (``send_to``) is a handoff inbox row plus a
``cbe_inbox`` notification; the holder takes such rows on the notification and on every heartbeat.

For the batch contributors of other domains, in a cluster: every row of a partitioned table
carries ``"part"``; a row for a partition this node does not hold is written only as a handoff
(``"taken_epoch": None``), and any row may name the partition whose state made it (``"_from"``)
to be left out with that partition. A delete of partitioned rows goes through
``delete_partitioned(unit, target, [(key, partition), ...])`` instead of ``unit.delete``, so the
fence covers it and a lost partition's deletes are left out.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..ids import partition_of, random_id_in
from ..jsonable import jsonable
from ..scxml import DocumentError, Event, Limits, Registry, Session, SessionHost, compile_document
from ..scxml.clock import Clock
from ..scxml.session_state import SessionState
from ..scxml.snapshot import decode_event, decode_state, encode_event, encode_state, snapshot_json
from ..storage import Fenced, StorageUnavailable, Store, TableWrite, UnitOfWork, dumps
from ..storage.listener import Listener
from ..storage.membership import Membership
from . import fencing, rows
from .flows import FlowRegistry, FlowVersion

log = logging.getLogger("engine.sessions")

# Sessions restored (their delayed sends held, unarmed), and the outbox rows of their pending effects.
Restored = tuple[list[Session], list[dict[str, Any]]]
#: Ended-session descriptions kept in memory, without and with a store.
ENDED_KEPT = {False: 10_000, True: 1_000}
SYSTEM_EVENTS = {"error.": "the interpreter", "done.": "the interpreter"}
#: The status a session is left with when its node forgets it (its partition moved): not running,
#: so no timer, turn or delivery runs it again; it is neither stored nor reported as ended.
DROPPED = "dropped"
INBOX_CHANNEL = "cbe_inbox"
#: The writer is cancelled again after each of these waits while it runs on (see ``_stop_writer``).
WRITER_STOP_SECONDS = 2.0
WRITER_STOP_ATTEMPTS = 5
#: A batch with at least this many session snapshots says the engine is busy: the next one waits
#: out ``commit_window`` (group commit). Fewer, as when one client makes one change at a time,
#: and the next batch is written at once.
BUSY_BATCH_SESSIONS = 8


class EndedSession(NamedTuple):
    """A session that ended lately, as the manager keeps it for queries: described only when
    asked (``describe``). Every callback's session ends, and describing each as it ended (its
    datamodel copied out) cost ~6.6 us per callback."""

    session: Session | None  # None: described already (``description``), and let go
    info: SessionInfo | None  # as it was at the end (the manager forgets it once the end is stored)
    # Made at once for a session holding a live context, and without the data for one whose data
    # could not be stored: nothing keeps that data or that context.
    description: dict[str, Any] | None = None

    @property
    def flow(self) -> str:
        if self.info is not None:
            return self.info.flow
        return self.description["flow"] if self.description is not None else self.session.doc.name  # type: ignore[union-attr]

    @property
    def version(self) -> int | None:
        return self.info.version if self.info is not None else None


@dataclass(slots=True)
class SessionInfo:
    """What the manager knows of a session beyond the interpreter: its flow version. Slots: one
    per live session (thousands of waiting callbacks), ~100 bytes less than with a ``__dict__``."""

    flow: str
    version: int
    hash: str
    created_at: float
    persistent: bool = True
    parent_id: str | None = None
    part: int | None = None  # in a cluster: its partition
    seq: int = 0  # in a cluster: snapshots written so far (strictly increasing across nodes)


class BadStartData(ValueError):
    pass


class NoSuchSession(LookupError):
    """``send_to``: the session does not run here, and nowhere else either (its partition is this
    node's, or there is no cluster). The caller tells ended (the stored status) from unknown."""


class _TooLarge(ValueError):
    """A session's snapshot beyond ``max_state_bytes``."""


class _NotStoredInTime(Exception):
    """A commit's wait outlived its limit (``SessionManager.commit`` answers StorageUnavailable)."""


def _too_late(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(_NotStoredInTime())


class SessionManager(SessionHost):
    """A ``SessionHost`` that persists sessions and restores them on start."""

    def __init__(self, flows: FlowRegistry, store: Store | None, *, registry: Registry | None = None,
                 clock: Clock | None = None, limits: Limits | None = None, durability_timeout: float = 10.0,
                 reserved_events: dict[str, str] | None = None, cluster: Membership | None = None,
                 listener: Listener | None = None, audit: bool = False, max_state_bytes: int | None = None,
                 commit_window: float = 0.0):
        super().__init__(registry=registry or flows.registry, clock=clock, limits=limits)
        self.flows = flows
        self.store = store
        # A snapshot larger than this fails its session (None: no bound): written at every
        # macrostep and held in memory, one flow's huge data would otherwise swamp both.
        self.max_state_bytes = max_state_bytes
        # Sessions restored with more state than that (stored before the bound, or under a larger
        # one): they run on and are stored whole, as a restart must lose no session.
        self._over_bound: set[str] = set()
        # Sessions stored running that a restore could not rebuild (logged): still stored running,
        # so the events in flight to them stay stored too, for a start that can rebuild them.
        self._unrestored: set[str] = set()
        self.durability_timeout = durability_timeout
        # Group commit: while busy, a batch begins at least this long after the one before, so
        # more changes share it. Each commit rewrites every page it touches (the callbacks' and
        # sessions' keys are random), and a session changed since the last batch is encoded again:
        # at a thousand callbacks a second it halves the commits and saves ~5-9 % of the CPU.
        self.commit_window = commit_window
        self._batch_began = 0.0  # monotonic time the last batch was built
        self._busy = False  # the last batch held at least BUSY_BATCH_SESSIONS snapshots
        # name prefix -> who alone may raise such events; system events are the interpreter's
        self.reserved_events = {**SYSTEM_EVENTS, **(reserved_events or {})}
        self.info: dict[str, SessionInfo] = {}
        self.ended: dict[str, EndedSession] = {}  # recently ended, for queries without the DB
        self._dirty: dict[str, Session] = {}
        self._held_events: list[tuple[int, Session, Event]] = []
        self._held_effects: list[tuple[int, str, str, dict[str, Any]]] = []
        self._new_inbox: list[dict[str, Any]] = []
        self._new_outbox: list[dict[str, Any]] = []
        self._new_flows: list[dict[str, Any]] = []
        self._delivered: dict[str, list[int]] = {}
        self._inbox_done: list[int] = []
        self._outbox_done: list[int] = []
        self._waiters: list[asyncio.Future] = []
        self._waiter_parts: dict[asyncio.Future, frozenset[int] | None] = {}  # cluster: what each waits for
        self._wake = asyncio.Event()
        # Other layers (the callback service) add their rows to each batch, so their changes
        # commit in the same transaction as the session snapshots they go with.
        self.batch_contributors: list[Callable[[UnitOfWork], None]] = []
        # ...and are told once that batch is committed (to release what waited for it).
        self.after_commit: list[Callable[[], None]] = []
        # Observers (metrics, the lifecycle log): each commit (its unit, seconds it took), each
        # flow session about to start (the session, the flow's name, its start parameters).
        self.on_commit: list[Callable[[UnitOfWork, float], None]] = []
        self.on_session_start: list[Callable[[Session, str, dict[str, Any]], None]] = []
        self._writer: asyncio.Task | None = None
        self.commits = 0
        # What the readiness check reports: since when changes wait to be written, and why not.
        self._unwritten_since: float | None = None  # monotonic time of the oldest change not yet written
        self._in_flight_since: float | None = None  # ...of the oldest change in the batch being written
        self._write_error: str | None = None
        self._failing_since: float | None = None
        self.disk_full = False
        # In a cluster (None otherwise): the node's membership, which the domains reach through
        # the manager; the partitions this manager has adopted (partition -> epoch).
        self.cluster = cluster
        self.audit = audit and cluster is not None
        self._parts: dict[int, int] = {}
        # Partitions being adopted -> events handed over to them so far: until every one handed over
        # before is taken, events to their sessions are handed over too, so none overtakes another.
        self._settling: dict[int, int] = {}
        # Partitions restored by ``adopt``, waiting for ``adopted``: (sessions, outbox rows).
        self._waiting_to_run: dict[tuple[int, ...], Restored] = {}
        self._row_parts: dict[int, int] = {}  # inbox and outbox row id -> partition, for their deletes
        self._delete_parts: fencing.DeleteParts = {}  # the contributors' deletes of the batch being built
        self._sourced: list[tuple[str, dict[str, Any]]] = []  # handoffs named by their source
        self._built_deletes: fencing.DeleteParts = {}  # ...and of the batch just built
        self.adopted_counts = [0, 0, 0]  # sessions, events, effects restored by adoptions (report_adopted)
        self._round = 0
        self._taking: asyncio.Task | None = None
        self._take_lock = asyncio.Lock()  # takes of handed-over events, one at a time (``_take``)
        self._take_again = False
        if cluster is not None:
            cluster.join(self)
            cluster.on_beat(self._take)
            if listener is not None:
                listener.subscribe(INBOX_CHANNEL, self._inbox_notified)
                listener.on_reconnect(self._take_soon)

    @property
    def persistent(self) -> bool:
        return self.store is not None

    # -- starting and stopping -------------------------------------------------------------
    async def open(self) -> None:
        """Restore every persisted session, then start the writer (in a cluster the writer only:
        sessions are restored partition by partition as they are adopted). The restored sessions
        run once ``run_restored`` is called: their flows' status events and actions need their
        callbacks' records, which the callback service loads after this."""
        if self.store is not None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
            if self.cluster is None:
                await self._restore_all()

    async def close(self) -> None:
        """Flush what is dirty, stop the writer and every timer. Bounded: with the database gone
        the changes not yet written are reported and left (the process must still stop)."""
        if self._writer is not None:
            try:
                await self.commit()
            except StorageUnavailable as e:
                log.error("stopping with changes not stored: %s", e)
            await self._stop_writer()
        if self._taking is not None:
            self._taking.cancel()
        await super().close()

    async def _stop_writer(self) -> None:
        """Cancel the writer and wait for it, a bounded while each time: a cancel that arrives as a
        driver call completes can be lost inside its ``wait_for`` (Python 3.11), and the loop
        would wait for the next wake for ever. Cancelled again until it ends, at most a few times."""
        writer, self._writer = self._writer, None
        for _ in range(WRITER_STOP_ATTEMPTS):
            if writer is None or writer.done():
                break
            writer.cancel()
            await asyncio.wait([writer], timeout=WRITER_STOP_SECONDS)
        else:
            log.error("the storage writer did not stop after %d cancels; left behind", WRITER_STOP_ATTEMPTS)
            return
        if writer is not None and not writer.cancelled() and (error := writer.exception()) is not None:
            log.error("the storage writer had failed: %s", error)

    # -- sessions ----------------------------------------------------------------------------
    def start_flow(self, name: str, data: dict[str, Any] | None = None, *, persistent: bool = True,
                   before_start: Callable[[Session], None] | None = None, partition: int | None = None) -> Session:
        """Start a session of a flow's current version; parameters become its data.

        A parameter matching a ``<data>`` id replaces its initial value; others become variables
        too (ORS semantics), except one the datamodel refuses (system variables) or one that would
        hide what every expression of the flow relies on (in a python flow a builtin such as
        ``str``): that is refused unless the flow itself declares the name.

        In a cluster the session goes in ``partition`` (its callback's), or in one ``placement()``
        picks.
        """
        fv = self.flows.get(name)
        data = dict(data or {})
        names = fv.start_names(tuple(data))  # worked out once per set of names (a service's are always the same)
        if names.refused:
            raise BadStartData(f"parameter names reserved by the datamodel: {', '.join(names.refused)}")
        if names.shadowing:
            raise BadStartData(f"parameter names that would shadow {fv.doc.datamodel.name} builtins in flow "
                               f"{name!r}: {', '.join(names.shadowing)} (rename them, or declare them as <data>)")
        if partition is None and self.cluster is not None and persistent:
            partition = self.placement()
        session = self._create(fv, data={k: data[k] for k in names.declared}, persistent=persistent,
                               partition=partition)
        if names.undeclared:
            session.datamodel.declare_all({key: data[key] for key in names.undeclared})
        if before_start is not None:  # e.g. the callback service maps the session to its record
            before_start(session)
        for observe in self.on_session_start:
            observe(session, name, data)
        return session.start()

    def _create(self, fv: FlowVersion, *, data: dict[str, Any] | None, persistent: bool,
                parent: Session | None = None, invokeid: str | None = None, partition: int | None = None) -> Session:
        sid = random_id_in(partition) if partition is not None else None
        session = super().create_session(fv.doc, data=data, parent=parent, invokeid=invokeid, session_id=sid)
        self.info[session.id] = SessionInfo(fv.name, fv.version, fv.hash, time.time(), persistent,
                                            parent.id if parent is not None else None, partition)
        return session

    def placement(self) -> int | None:
        """A partition this node holds, for something new (round robin); None outside a cluster."""
        if self.cluster is None:
            return None
        ready = sorted(p for p in self.cluster.adopted if p in self.cluster.held and p in self._parts)
        if not ready:
            raise StorageUnavailable("this node holds no partitions yet")
        self._round += 1
        return ready[self._round % len(ready)]

    def create_session(self, doc, *, data=None, parent=None, invokeid=None, session_id=None):
        """Sessions created by ``<invoke>``: children share their parent's persistence."""
        fv = self.flows.by_hash.get(doc.content_hash)
        if fv is None:
            fv, new = self.flows.child_version(doc)
            if new and self.store is not None:
                self._new_flows.append(self.flows.row(fv))
        parent_info = self.info.get(parent.id) if parent is not None else None
        persistent = parent_info.persistent if parent_info is not None else True
        partition = parent_info.part if parent_info is not None else None  # children live with their parent
        return self._create(fv, data=data, persistent=persistent, parent=parent, invokeid=invokeid,
                            partition=partition)

    def describe(self, session_id: str) -> dict[str, Any] | None:
        """Status of a live or recently ended session, from memory."""
        session = self.sessions.get(session_id)
        if session is None:
            found = self.ended.get(session_id)
            if found is None:
                return None
            if found.description is not None:
                return dict(found.description)
            return self._describe(found.session, found.info)  # type: ignore[arg-type]
        return self._describe(session, self.info.get(session_id))

    async def find(self, session_id: str) -> dict[str, Any] | None:
        """Status of a live, recently ended or stored session (the last read from its stored
        state, which only this manager decodes)."""
        found = self.describe(session_id)
        if found is None and self.store is not None:
            found = await rows.describe_stored(self.store, session_id)
        return found

    def _describe(self, session: Session, info: SessionInfo | None, with_data: bool = True) -> dict[str, Any]:
        variables: dict[str, Any] = {}
        if with_data:
            try:
                variables = session.variables
            except Exception:  # an ecmascript context whose values cannot be copied out (over its
                pass  # memory limit): the session is failed for it, and its end must still be told
        return {
            "sessionid": session.id,
            "flow": info.flow if info else session.doc.name,
            "version": info.version if info else None,
            "status": session.status,
            "active_states": session.active_state_ids(),
            "final_state": session.final_state,
            "datamodel": jsonable(variables),
            "error": session.error,
            "parent": info.parent_id if info else None,
            "persistent": info.persistent if info else False,
            "created_at": info.created_at if info else None,
        }

    # -- the seams of SessionHost --------------------------------------------------------------
    def _durable(self, session: Session) -> bool:
        info = self.info.get(session.id)
        return self.store is not None and info is not None and info.persistent

    def route_event(self, sender: Session | None, target: Session, event: Event) -> None:
        if not self._durable(target):
            target.deliver(event)
            return
        row_id = self.store.new_id()  # type: ignore[union-attr]
        row = {"id": row_id, "session_id": target.id, "event": dumps(encode_event(event)), "created_at": time.time()}
        if self.cluster is not None:
            part = self.info[target.id].part
            origin = self.info.get(sender.id) if sender is not None else None
            row.update(part=part, taken_epoch=self.cluster.held.get(part),  # type: ignore[arg-type]
                       _from=origin.part if origin is not None else None)
            if part not in self._parts or part in self._settling:
                self._hand_over_row(row)  # being adopted: taken in order with what was handed over before
                return
            self._row_parts[row_id] = part  # type: ignore[assignment]
        self._new_inbox.append(row)
        self._held_events.append((row_id, target, event))
        self.request_write()

    def send_to(self, session_id: str, event: Event, *, source: str | None = None) -> None:
        """The one way in for an event from outside the flows (the ORS API, Basic HTTP, orscb
        deliveries, platform events). A session running here gets it as ``route_event`` gives it;
        one of a partition another node holds gets it through a handoff inbox row, taken by that
        node once this node's next batch commits (``source``, a name of where the event came from,
        makes a copy sent again insert nothing; in a cluster also for a session running here,
        taken back as a handoff before the next batch is built). Callers await ``commit()`` after
        it, to answer once the event is durable. ``NoSuchSession`` when the session runs nowhere."""
        session = self.sessions.get(session_id)
        running = session is not None and session.is_running
        if running and (source is None or self.cluster is None):
            self.route_event(None, session, event)  # type: ignore[arg-type]
            return
        if self.cluster is None or self.store is None:
            raise NoSuchSession(session_id)
        part = partition_of(session_id)
        if part in self._parts and not running:
            raise NoSuchSession(session_id)
        row = {"id": self.store.new_id(), "session_id": session_id, "event": dumps(encode_event(event)),
               "created_at": time.time(), "part": part, "taken_epoch": None}
        if source is not None:
            if part in self._settling:  # being adopted: taken in order with what was handed over before
                self._settling[part] += 1
            self._sourced.append((source, row))
            self.request_write()
        else:
            self._hand_over_row(row)

    def hand_over(self, sender: Session, session_id: str, event: Event) -> bool:
        """A ``<send>`` to a session of a partition this node has not adopted: an inbox row handed
        over with the sender's snapshot (and left out with the sender's partition)."""
        if self.cluster is None or self.store is None or not self._durable(sender):
            return False
        part = partition_of(session_id)
        if part in self._parts:
            return False
        self._hand_over_row({"id": self.store.new_id(), "session_id": session_id, "event": dumps(encode_event(event)),
                             "created_at": time.time(), "part": part, "_from": self.info[sender.id].part})
        return True

    def _hand_over_row(self, row: dict[str, Any]) -> None:
        """An inbox row for the holder of its partition to take (this node, once it has adopted it)."""
        row["taken_epoch"] = None
        part = row["part"]
        if part in self._settling:
            self._settling[part] += 1
        self._new_inbox.append(row)
        self.request_write()

    def delete_partitioned(self, unit: UnitOfWork, target: TableWrite, keyed: list[tuple[Any, int]]) -> None:
        """For batch contributors in a cluster: delete rows of a partitioned table by
        ``(key, partition)``; the unit is fenced by those partitions and leaves out a lost one's."""
        unit.delete(target, [key for key, _part in keyed])
        self._delete_parts.setdefault(target, {}).update(keyed)

    def emit(self, session: Session, kind: str, payload: dict[str, Any], *, durable: bool = True) -> None:
        if not self._durable(session) or not durable:
            # Nothing to redo after a restart, and nobody outside the process to act on a state
            # the store does not hold yet: carried out at once, without waiting for the commit.
            self.perform_effect(session.id, kind, payload)
            return
        row_id = self.store.new_id()  # type: ignore[union-attr]
        row = {"id": row_id, "session_id": session.id, "kind": kind, "payload": dumps(payload),
               "created_at": time.time()}
        if self.cluster is not None:
            row["part"] = self._row_parts[row_id] = self.info[session.id].part  # type: ignore[assignment]
        self._new_outbox.append(row)
        self._held_effects.append((row_id, session.id, kind, payload))
        self.request_write()

    def refuses_external(self, name: str) -> str | None:
        for prefix, owner in self.reserved_events.items():
            # The bare name too: a descriptor 'error.*' (or 'error') matches the event 'error'.
            if name.startswith(prefix) or name == prefix.rstrip("."):
                return f"event names starting {prefix!r} are reserved: only {owner} raises them"
        return None

    def session_changed(self, session: Session) -> None:
        if self._durable(session):
            self._dirty[session.id] = session
            self.request_write()

    def session_ended(self, session: Session) -> None:
        if session.id in self.sessions:
            info = self.info.get(session.id)
            # Each holds the session and its datamodel (~3.5 KB): with a store, the stored row
            # answers for older ones, so only the latest few are kept (ENDED_KEPT). One holding
            # a live context (ecmascript) is described now, and its context goes with it.
            # A datamodel that does not say (one written before ``live`` was in the port) is
            # described at once, as every one was.
            kept = not getattr(session.datamodel, "live", True)
            self.ended[session.id] = (EndedSession(session, info) if kept
                                      else EndedSession(None, info, self._describe(session, info)))
            if len(self.ended) > ENDED_KEPT[self.store is not None]:
                self.ended.pop(next(iter(self.ended)))
        super().session_ended(session)
        if not self._durable(session):
            self.info.pop(session.id, None)
        found = self.ended.get(session.id)
        if found is not None and found.session is session:
            # Kept for its description: not the last event it took (its data may be a request's
            # whole body), which no description shows and no snapshot stores.
            session.datamodel.set_event(None)

    # -- committing ----------------------------------------------------------------------------
    def request_write(self) -> None:
        """Something a batch contributor holds has changed; write it with the next batch.

        Only the first change since the writer took its last batch wakes it: the writer clears
        ``_wake`` and ``_unwritten_since`` together (no await between), so while a change is
        unwritten the wake is already set. A callback makes ~30 changes (each status event,
        record and snapshot), and setting the event for each cost two Python calls."""
        if self._unwritten_since is None:
            self._unwritten_since = time.monotonic()
            self._wake.set()


    async def commit(self, timeout: float | None = None, parts: Collection[int] | None = None) -> None:
        """Return once everything that happened before the call is durable; raise
        ``StorageUnavailable`` when that takes longer than ``timeout`` (default: the manager's).
        In a cluster, also when a partition is dropped (a fence) before the next batch is built:
        what it held was forgotten unwritten. ``parts`` names the partitions the change is in
        (None: it may be in any, and any drop fails the wait)."""
        if self._writer is None:
            return
        if self._writer.done():
            raise StorageUnavailable("the storage writer has stopped; see the engine log")
        # The writer's loop is the caller's: asking asyncio for the running loop is a system call
        # on Python 3.11 (getpid), once per create.
        future = self._writer.get_loop().create_future()
        self._waiters.append(future)
        if self.cluster is not None:
            self._waiter_parts[future] = frozenset(parts) if parts is not None else None
        self._wake.set()
        limit = self.durability_timeout if timeout is None else timeout
        # The future is this call's alone, so a timer that fails it is the whole time limit: no
        # wait_for and shield (two more tasks' worth of callbacks on every create). The writer
        # skips a future already done (failed here, or cancelled with the caller). The engine
        # clock's timer, not the loop's: a TimerHandle per create, cancelled milliseconds later,
        # stayed in asyncio's heap for the whole limit and slowed every other timer. The limit
        # is real seconds: in the clock's, times its scale.
        timer = self.clock.call_later(limit * self.clock.scale, _too_late, future)
        try:
            await future
        except _NotStoredInTime:
            reason = self._write_error or "the storage writer is behind"
            raise StorageUnavailable(f"the change was not stored within {limit:g} s ({reason}); "
                                     "it is kept and will be stored when storage recovers") from None
        finally:
            timer.cancel()

    def check_writer(self) -> None:
        """Refuse new work at once (``StorageUnavailable``) while storage is known to be failing,
        so a request that cannot be made durable changes nothing instead of waiting."""
        if self._writer is not None and self._writer.done():
            raise StorageUnavailable("the storage writer has stopped; see the engine log")
        if self._write_error is not None:
            raise StorageUnavailable(f"storage is failing: {self._write_error}")

    def writer_status(self) -> dict[str, Any]:
        """For the readiness check: is the writer alive, how old is the oldest unwritten change,
        and what is the last storage error."""
        now = time.monotonic()
        oldest = min((t for t in (self._unwritten_since, self._in_flight_since) if t is not None), default=None)
        return {
            "persistent": self.store is not None,
            "alive": self.store is None or (self._writer is not None and not self._writer.done()),
            "backlog_age": round(now - oldest, 3) if oldest is not None else 0.0,
            "error": self._write_error,
            "failing_for": round(now - self._failing_since, 3) if self._failing_since is not None else 0.0,
            "disk_full": self.disk_full,
            "commits": self.commits,
        }

    def _build(self) -> tuple[UnitOfWork, list, list, list]:
        if self.cluster is not None:
            return self._build_fenced()
        now = time.time()
        batch = UnitOfWork()  # keeps these lists: rows added to them while building go in too
        batch.add(rows.FLOW_VERSIONS, self._new_flows)
        snapshots = batch.rows(rows.SESSIONS)
        batch.add(rows.INBOX, self._new_inbox)
        batch.add(rows.OUTBOX, self._new_outbox)
        inbox_done = self._inbox_done
        batch.delete(rows.INBOX, inbox_done)
        batch.delete(rows.OUTBOX, self._outbox_done)
        while self._dirty:  # failing a session that cannot be stored may touch others (its parent)
            dirty, self._dirty = self._dirty, {}
            for sid, session in dirty.items():
                info = self.info.get(sid)
                if info is None:
                    continue
                encoded = self._encode(session)  # first: a session that cannot be encoded is failed
                snapshots.append({
                    "id": sid, "flow": info.flow, "flow_hash": info.hash, "flow_version": info.version,
                    "status": session.status, "parent_id": info.parent_id, "created_at": info.created_at,
                    "updated_at": now, "snapshot": encoded,
                })
                inbox_done.extend(self._delivered.pop(sid, ()))
                if session.status != "running":
                    self.info.pop(sid, None)
        if batch and self.clock.scale != 1.0:
            batch.values["clock"] = repr(self.clock.now())  # so a restart resumes simulated time
        for contribute in self.batch_contributors:
            try:
                contribute(batch)
            except Exception:
                log.exception("a storage batch contributor failed; the batch goes on without its rows")
        return (batch, *self._take_held())

    def _take_held(self) -> tuple[list, list, list]:
        """What the batch just built releases once written; the next batch starts empty."""
        events, effects, waiters = self._held_events, self._held_effects, self._waiters
        self._dirty = {}
        self._new_inbox, self._new_outbox, self._new_flows = [], [], []
        self._inbox_done, self._outbox_done = [], []
        self._held_events, self._held_effects, self._waiters = [], [], []
        if self._waiter_parts:
            for future in waiters:
                self._waiter_parts.pop(future, None)
        return events, effects, waiters

    def _fail_waiters_in(self, partitions: set[int]) -> None:
        """Waits for changes not yet in a batch that may lie in ``partitions``, being dropped
        unwritten: their callers must not hear that they were stored (a create answered 200 whose
        record was forgotten would be a lost callback)."""
        kept = []
        for future in self._waiters:
            wanted = self._waiter_parts.get(future)
            if future.done() or (wanted is not None and not wanted & partitions):
                kept.append(future)
                continue
            self._waiter_parts.pop(future, None)
            lost = sorted(partitions if wanted is None else wanted & partitions)
            future.set_exception(StorageUnavailable(
                f"this node lost partition(s) {lost[:8]} before the change was stored: "
                + ("it was not stored; try again" if wanted is not None else
                   "it may not have been stored; read it back or try again")))
            future.add_done_callback(lambda f: f.exception())  # retrieved, even by nobody
        self._waiters = kept

    def _build_fenced(self) -> tuple[UnitOfWork, list, list, list]:
        """``_build`` in a cluster: every row with its partition, each snapshot with the epoch this
        node holds its partition at and its next sequence number, the unit fenced by the partitions
        it writes (``fencing.confine``); no clock value (the cluster's clock has one origin)."""
        assert self.cluster is not None and self.store is not None
        now = time.time()
        held = self.cluster.held
        node = self.cluster.node
        batch = UnitOfWork()
        batch.add(rows.FLOW_VERSIONS, self._new_flows)
        snapshots = batch.rows(rows.CLUSTER_SESSIONS)
        audit = batch.rows(rows.SESSION_WRITES) if self.audit else None
        batch.add(rows.CLUSTER_INBOX, self._new_inbox)
        batch.add(rows.CLUSTER_OUTBOX, self._new_outbox)
        inbox_done = self._inbox_done
        while self._dirty:
            dirty, self._dirty = self._dirty, {}
            for sid, session in dirty.items():
                info = self.info.get(sid)
                if info is None:
                    continue
                encoded = self._encode(session)
                info.seq += 1
                snapshots.append({
                    "id": sid, "flow": info.flow, "flow_hash": info.hash, "flow_version": info.version,
                    "status": session.status, "parent_id": info.parent_id, "created_at": info.created_at,
                    "updated_at": now, "snapshot": encoded, "part": info.part, "epoch": held.get(info.part),
                    "seq": info.seq,
                })
                if audit is not None:
                    audit.append({"session_id": sid, "part": info.part,
                                  "epoch": held.get(info.part), "node": node, "seq": info.seq,
                                  "status": session.status, "at": now})
                inbox_done.extend(self._delivered.pop(sid, ()))
                if session.status != "running":
                    self.info.pop(sid, None)
        for contribute in self.batch_contributors:
            try:
                contribute(batch)
            except Exception:
                log.exception("a storage batch contributor failed; the batch goes on without its rows")
        deletes, self._delete_parts = self._delete_parts, {}
        parts = self._row_parts
        own = {rows.CLUSTER_INBOX: {k: parts.pop(k) for k in inbox_done if k in parts},
               rows.CLUSTER_OUTBOX: {k: parts.pop(k) for k in self._outbox_done if k in parts}}
        batch.delete(rows.CLUSTER_INBOX, inbox_done)
        batch.delete(rows.CLUSTER_OUTBOX, self._outbox_done)
        deletes.update(own)
        batch.fence = self.cluster.fence(fencing.confine(batch, held, deletes))
        self._built_deletes = deletes
        return (batch, *self._take_held())

    def _encode(self, session: Session) -> str:
        """The session's snapshot as JSON; a session whose state cannot be encoded is failed with
        the cause (its callback completes with FAIL_ERROR) and stored without its data."""
        try:
            text = snapshot_json(session.to_state(for_snapshot=True), dumps)
            over_bound = session.id in self._over_bound
            if over_bound and not session.is_running:  # its last snapshot: the set forgets it
                self._over_bound.discard(session.id)
            size = None if over_bound else self._beyond_bound(text)
            if size is not None:
                raise _TooLarge(f"it is {size:,} bytes of JSON, more than the {self.max_state_bytes:,} a session "
                                "may store (max_session_state_bytes)")
            return text
        except Exception as e:  # RecursionError on data nested too deeply, a value JSON refuses...
            cause = str(e) if isinstance(e, _TooLarge) else f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            outcome = "the session is failed" if session.is_running else "its end is stored without its data"
            log.error("session %s: its state cannot be stored (%s); %s", session.id, cause, outcome)
            session.fail(f"its state cannot be stored: {cause}")  # nothing when it has ended already
            self._dirty.pop(session.id, None)  # it is written now, in this batch
            ended = self.ended.get(session.id)
            if ended is not None:  # described now, without the data that was too much, and let go
                self.ended[session.id] = EndedSession(None, ended.info, self._describe(session, ended.info, False))
            return dumps(encode_state(session.to_bare_state()))

    def _beyond_bound(self, text: str) -> int | None:
        """The size in bytes of a snapshot's JSON beyond ``max_state_bytes``, else None."""
        limit = self.max_state_bytes
        if limit is None or len(text) <= limit // 4:  # so few characters: within it however encoded
            return None
        size = len(text.encode())
        return size if size > limit else None

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            if self._busy:
                await asyncio.sleep(self._batch_began + self.commit_window - time.monotonic())
            self._wake.clear()
            try:
                await self._write_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop every later commit: log it loudly and go on
                log.exception("storage writer error; the writer goes on")
                await asyncio.sleep(0.05)
                self._wake.set()

    async def _write_once(self) -> None:
        self._in_flight_since, self._unwritten_since = self._unwritten_since, None
        refused: Fenced | None = None
        try:
            # Until none is left, with no await from the last look to ``_build``: one handed over
            # while the last ones were written came before the direct events that batch would
            # release (a platform's route.done sent again, then its call.ended taken straight in).
            while self._sourced:
                if await self._hand_over_sourced():
                    await self._take_own()
            self._batch_began = time.monotonic()
            batch, events, effects, waiters = self._build()
            snapshots = batch.upserts.get(rows.CLUSTER_SESSIONS if self.cluster is not None else rows.SESSIONS, ())
            self._busy = self.commit_window > 0 and len(snapshots) >= BUSY_BATCH_SESSIONS
            deletes, self._built_deletes = self._built_deletes, {}
            if batch:
                started = time.perf_counter()
                refused = await self._write(batch, deletes)
                self.commits += 1
                for observe in self.on_commit:
                    observe(batch, time.perf_counter() - started)
        finally:
            self._in_flight_since = None
        for hook in self.after_commit:
            try:
                hook()
            except Exception:
                log.exception("after-commit hook failed")
        try:
            self._release(events, effects)
        finally:
            for future in waiters:
                if future.done():
                    continue
                if refused is None:
                    future.set_result(None)
                else:  # the API answers 503: part of what it waited for was not this node's to write
                    future.set_exception(refused)
                    future.add_done_callback(lambda f: f.exception())  # retrieved, even by nobody

    async def _write(self, batch: UnitOfWork, deletes: fencing.DeleteParts | None = None) -> Fenced | None:
        """Write ``batch``, retrying until it is stored. In a cluster, what the fence refuses is
        taken out (its partitions forgotten) and the rest written; the refusal is returned."""
        delay = 0.05
        refused: Fenced | None = None
        while True:
            try:
                await self.store.write(batch)  # type: ignore[union-attr]
            except Fenced as e:
                refused = e
                await self._fenced(batch, deletes or {}, e)
                if not batch:  # the database answered (a refusal): storage works again
                    self._storage_answered()
                    return refused
                continue
            except Exception as e:
                # Keep everything in memory and try again: nothing is released before it is stored.
                self._write_error = f"{type(e).__name__}: {e}"[:500]
                self.disk_full = _is_disk_full(e)
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.exception("storage write failed; retrying in %.2f s", delay)
                else:
                    log.error("storage write failed again (%s); retrying in %.2f s", self._write_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._storage_answered()
            return refused

    def _storage_answered(self) -> None:
        """A write went through, or was refused by the fence: no longer failing (readiness)."""
        if self._failing_since is not None:
            log.warning("storage writes succeed again after %.1f s", time.monotonic() - self._failing_since)
        self._write_error, self._failing_since, self.disk_full = None, None, False

    async def _fenced(self, batch: UnitOfWork, deletes: fencing.DeleteParts, refusal: Fenced) -> None:
        """The fence refused ``batch``: forget what this node no longer holds, keep the rest of
        the batch to write (fenced anew), waiting for a new registration when the lease was lost."""
        assert self.cluster is not None
        cluster = self.cluster
        log.warning("a storage batch was fenced: %s", refusal)
        lost = set(refusal.partitions)
        if refusal.node_lost:
            lost |= fencing.partitions_of(batch, deletes)
            await cluster.self_fence("a write found this node's lease gone")
        cluster.forget(lost)
        fencing.strip(batch, lost | (fencing.partitions_of(batch, deletes) - set(cluster.held)), deletes)
        if not batch:
            return
        while cluster.lease_lost:  # registered again on the next heartbeat tick
            await asyncio.sleep(cluster.heartbeat / 4)
        batch.fence = cluster.fence(fencing.partitions_of(batch, deletes))

    def _release(self, events: list, effects: list) -> None:
        if self.cluster is not None:  # what a partition this node let go of meanwhile holds is its holder's
            events = [e for e in events if self._row_parts.get(e[0]) in self._parts]
            effects = [e for e in effects if self._row_parts.get(e[0]) in self._parts]
        for row_id, target, event in events:
            if target.is_running and target.id in self.sessions:
                target.deliver(event)
                self._delivered.setdefault(target.id, []).append(row_id)
            else:
                self._inbox_done.append(row_id)
        for row_id, session_id, kind, payload in effects:
            self._perform_tracked(row_id, session_id, kind, payload)
        if self._inbox_done or self._outbox_done:
            self._wake.set()

    def _perform_tracked(self, row_id: int, session_id: str, kind: str, payload: dict[str, Any]) -> None:
        try:
            result = self.perform_effect(session_id, kind, payload)
        except Exception:
            log.exception("effect %s of session %s failed", kind, session_id)
            result = None
        if isinstance(result, asyncio.Future | asyncio.Task):
            result.add_done_callback(lambda _f: self._effect_done(row_id))
        else:
            self._effect_done(row_id)

    def _effect_done(self, row_id: int) -> None:
        self._outbox_done.append(row_id)
        self._wake.set()

    # -- restoring -------------------------------------------------------------------------------
    async def _restore_all(self) -> None:
        await self._restore(None)

    async def _restore(self, parts: list[int] | None) -> None:
        """Restore the running sessions (of ``parts`` in a cluster), then queue the events in
        flight to them, re-arm their timers and redo their pending effects."""
        assert self.store is not None
        cluster = self.cluster
        if parts is None:
            running = await rows.load_running(self.store)
        else:
            running = await rows.load_running_in(self.store, parts)
        by_id = {r["id"]: r for r in running}
        if cluster is not None:  # versions another node stored (a child document it compiled, say)
            for content_hash in {r["flow_hash"] for r in running} - set(self.flows.by_hash):
                await self._load_flow_version(content_hash)

        def depth(row: dict[str, Any]) -> int:
            d, seen = 0, set()
            while row.get("parent_id") in by_id and row["id"] not in seen:
                seen.add(row["id"])
                row = by_id[row["parent_id"]]
                d += 1
            return d

        restored: list[tuple[Session, SessionState]] = []
        for row in sorted(running, key=depth):
            if row["id"] in self.sessions:  # a cluster node that holds it already
                continue
            fv = self.flows.by_hash.get(row["flow_hash"])
            if fv is None:
                log.error("session %s: flow version %s is not stored; cannot restore", row["id"], row["flow_hash"])
                self._unrestored.add(row["id"])
                continue
            parent = self.sessions.get(row["parent_id"]) if row["parent_id"] else None
            try:
                state = decode_state(json.loads(row["snapshot"]))
                session = Session.from_state(self, fv.doc, row["id"], state, parent=parent)
            except Exception:
                log.exception("session %s could not be restored", row["id"])
                self._unrestored.add(row["id"])
                continue
            self.sessions[session.id] = session
            if self._beyond_bound(row["snapshot"]) is not None:
                self._over_bound.add(session.id)
                log.warning("session %s was stored with more state than max_session_state_bytes (%d); it runs "
                            "on and is stored whole", session.id, self.max_state_bytes)
            self.info[session.id] = SessionInfo(row["flow"], row["flow_version"], row["flow_hash"],
                                                row["created_at"], True, row["parent_id"],
                                                row.get("part"), row.get("seq") or 0)
            restored.append((session, state))
        for session, state in restored:
            session.link_invocations(state.invocations, self.sessions)
        if parts is None:
            inbox = await rows.load_inbox(self.store)
        else:
            assert cluster is not None
            inbox = await rows.take_inbox(self.store, cluster.node, cluster.incarnation, parts)
        for row in inbox:
            target = self.sessions.get(row["session_id"])
            if target is None and row["session_id"] in self._unrestored:
                continue  # kept with the session it is for (stored running, not rebuilt)
            if cluster is not None:
                self._row_parts[row["id"]] = row["part"]
            if target is None or not target.is_running:
                self._inbox_done.append(row["id"])
                continue
            target.queue(decode_event(json.loads(row["event"])))
            self._delivered.setdefault(target.id, []).append(row["id"])
            self._dirty[target.id] = target
        outbox = await rows.load_outbox(self.store) if parts is None else await rows.load_outbox_in(self.store, parts)
        if parts is not None:
            self._parts.update({p: cluster.held[p] for p in parts if p in cluster.held})  # type: ignore[union-attr]
            for row in outbox:
                self._row_parts[row["id"]] = row["part"]
            # They run once every participant holds the partitions too (``adopted``): a flow's
            # actions and status events need its callback's record, loaded after this.
            self._waiting_to_run[tuple(parts)] = ([s for s, _ in restored], outbox)
            # A partition forgotten while its sessions were read (a fenced write) found nothing to
            # drop then: what was read of it goes now, not left in memory unrun.
            self.drop({p for p in parts if p not in cluster.held})  # type: ignore[union-attr]
        else:
            self._waiting_to_run[()] = ([s for s, _ in restored], outbox)  # ``run_restored``, as ``adopted`` above
        if parts is None:
            log.info("restored %d sessions, %d events in flight, %d pending effects", len(restored), len(inbox),
                     len(outbox))
        else:
            log.info("partitions %s adopted: %d sessions, %d events in flight, %d pending effects", parts,
                     len(restored), len(inbox), len(outbox))
            self.adopted_counts = [a + b for a, b in zip(self.adopted_counts, (len(restored), len(inbox), len(outbox)),
                                                         strict=True)]
        self._wake.set()

    def report_adopted(self) -> None:
        """Log what the adoptions since the last report restored, as a start without a cluster
        logs what it restored (a node's start: its first claim)."""
        sessions, events, effects = self.adopted_counts
        self.adopted_counts = [0, 0, 0]
        log.info("restored %d sessions, %d events in flight, %d pending effects", sessions, events, effects)

    async def _load_flow_version(self, content_hash: str) -> None:
        """A document version this node has not seen, from the database (only the lookup by hash
        learns it: which version is current is the flow registry's business)."""
        row = await rows.get_flow_version(self.store, content_hash)  # type: ignore[arg-type]
        if row is None:
            return
        try:
            # limits=False: a version stored before one of the engine's bounds existed still
            # runs the sessions started on it (the flow registry starts no new one on it).
            doc = compile_document(row["text"], source=row["name"], base_dir=row.get("base_dir"),
                                   registry=self.flows.registry, limits=False)
        except DocumentError as e:
            log.error("stored version %s of %s no longer compiles: %s", row["version"], row["name"], e)
            return
        self.flows.by_hash[content_hash] = FlowVersion(row["name"], row["version"], content_hash, doc,
                                                       row["created_at"], row["kind"])

    def run_restored(self) -> None:
        """Let the sessions ``open`` restored run (without a cluster; ``adopted`` does in one).
        Called once the other parts have loaded what the flows report to: a session let run
        at once took its overdue timers and queued events while the callback service was still
        reading its records, so its status events found no callback and were dropped (no
        event row, no push), and a flow that ended meanwhile left its callback failed as
        "session gone" (seen on a loaded machine, tests/push/test_restart.py)."""
        restored, outbox = self._waiting_to_run.pop((), ([], []))
        self._run_restored(restored, outbox)

    # -- a cluster's partitions (PartitionParticipant) ----------------------------------------------
    def _run_restored(self, restored: list[Session], outbox: list[dict[str, Any]]) -> None:
        """Let restored sessions run: their timers re-armed, what was queued to them processed on
        a later loop turn, their pending effects redone."""
        for session in restored:
            if self.sessions.get(session.id) is not session or not session.is_running:
                continue  # dropped meanwhile
            if self.cluster is not None and self.info[session.id].part not in self._parts:
                continue  # its partition was lost while it was restored (a fence): not this node's to run
            session.resume()  # its delayed sends, held since ``from_state`` (and in any snapshot taken since)
        for row in outbox:
            if self.cluster is None or row["part"] in self._parts:
                self._perform_tracked(row["id"], row["session_id"], row["kind"], json.loads(row["payload"]))

    async def adopt(self, partitions: dict[int, int]) -> None:
        """Restore the sessions of ``partitions`` with the events in flight to them, as a start
        does; they run once every participant has adopted the partitions (``adopted``)."""
        if self.store is None:
            return
        parts = sorted(partitions)
        self._settling.update(dict.fromkeys(parts, 0))
        try:
            await self._restore(parts)
        except BaseException:
            self._waiting_to_run.pop(tuple(parts), None)
            for p in parts:
                self._settling.pop(p, None)
            raise

    async def adopted(self, partitions: dict[int, int]) -> None:
        """Every participant holds ``partitions`` now: their sessions run, and what was handed
        over to them meanwhile is taken, in order."""
        if self.store is None:
            return
        parts = sorted(partitions)
        restored, outbox = self._waiting_to_run.pop(tuple(parts), ([], []))
        try:
            self._run_restored(restored, outbox)
            for _round in range(100):  # until no event was handed over to them while the last ones were taken
                before = [self._settling.get(p) for p in parts]
                try:
                    await self.commit()
                    await self._take()
                except Exception as e:  # the heartbeat's take goes on trying
                    log.warning("partitions %s adopted, but their handed-over events not yet taken (%s)", parts, e)
                    break
                if before == [self._settling.get(p) for p in parts]:
                    break
        finally:
            for p in parts:  # no await from the last take to here: later events go straight to the sessions
                self._settling.pop(p, None)

    async def release(self, partitions: dict[int, int]) -> None:
        """Write what is pending (for these partitions and the rest), then forget them."""
        gone = set(partitions)
        for p in gone:
            self._parts.pop(p, None)  # no more takes for them
        try:
            await self.commit()
        except StorageUnavailable as e:
            log.warning("giving back partitions %s with changes not stored (%s): their next holder restores "
                        "them as last stored", sorted(gone), e)
        self.drop(gone)

    def drop(self, partitions: set[int]) -> None:
        """Forget the sessions of ``partitions`` at once, writing nothing: their timers cancelled,
        never run or stored again here; what they held back (events, effects) is not released."""
        if not partitions:
            return
        self._fail_waiters_in(partitions)
        for p in partitions:
            self._parts.pop(p, None)
        # An adoption's sessions still waiting to run lose those of these partitions only: the rest
        # of the chunk runs once adopted (dropping the whole entry left them never resumed).
        info = self.info
        for key, (restored, outbox) in list(self._waiting_to_run.items()):
            if partitions.intersection(key):
                self._waiting_to_run[key] = ([s for s in restored
                                              if (i := info.get(s.id)) is not None and i.part not in partitions],
                                             [row for row in outbox if row.get("part") not in partitions])
        # By their info, not by ``sessions``: a session that ended since the last batch has left
        # ``sessions`` but still waits, dirty, to be stored with the deletes of the events it took
        # in. Kept, its next batch would leave its snapshot out (a partition not held) and write
        # those deletes, no longer known as the partition's: its events gone, its state not moved.
        gone = {sid for sid, info in self.info.items() if info.part in partitions}
        self._unrestored = {sid for sid in self._unrestored if partition_of(sid) not in partitions}
        for p in partitions:
            self._settling.pop(p, None)
        for sid in gone:
            session = self.sessions.pop(sid, None)
            if session is not None:
                session.cancel_timers()
                session.status = DROPPED  # a turn, a timer or a delivery still on its way finds it not running
            self.info.pop(sid, None)
            self._dirty.pop(sid, None)
            self._delivered.pop(sid, None)
        self._new_inbox = fencing.drop_rows(self._new_inbox, partitions)
        self._new_outbox = fencing.drop_rows(self._new_outbox, partitions)
        kept = {row["id"] for row in self._new_inbox}
        self._held_events = [e for e in self._held_events if e[0] in kept and e[1].id not in gone]
        self._held_effects = [e for e in self._held_effects if e[1] not in gone]
        parts = self._row_parts
        self._inbox_done = [k for k in self._inbox_done if parts.get(k) not in partitions]
        self._outbox_done = [k for k in self._outbox_done if parts.get(k) not in partitions]
        for key in [k for k, p in parts.items() if p in partitions]:
            del parts[key]
        if gone:
            log.info("dropped %d sessions of partitions %s", len(gone), sorted(partitions))

    # -- taking handed-over events (cluster) ------------------------------------------------------
    def _inbox_notified(self, payload: str) -> None:
        try:
            part = int(payload)
        except ValueError:
            return
        if part in self._parts:
            self._take_soon()

    def _take_soon(self) -> None:
        """Take now, or once more after the take running now (one at a time)."""
        if self._taking is not None and not self._taking.done():
            self._take_again = True
            return
        self._taking = asyncio.get_running_loop().create_task(self._take_until_quiet())

    async def _take_until_quiet(self) -> None:
        self._take_again = True
        while self._take_again:
            self._take_again = False
            try:
                await self._take()
            except Exception as e:
                log.warning("taking handed-over events failed (%s: %s); the next heartbeat tries again",
                            type(e).__name__, e)
                return

    async def _take(self) -> None:
        """Take the events other nodes handed over to the sessions of the partitions held here
        (on a ``cbe_inbox`` notification and on every heartbeat) and deliver them."""
        # One take at a time: the writer's own take (``_take_own``) must not return while another
        # holds rows it took but has not delivered yet, or the batch built after it would release
        # its direct events before them.
        async with self._take_lock:
            await self._take_locked()

    async def _take_locked(self) -> None:
        cluster = self.cluster
        if cluster is None or self.store is None or not self._parts or cluster.lease_lost:
            return
        taken = await rows.take_inbox(self.store, cluster.node, cluster.incarnation, sorted(self._parts))
        waiting = {p for parts in self._waiting_to_run for p in parts}  # restored, not running yet
        for row in taken:
            if row["part"] not in self._parts:  # let go of meanwhile: its next holder takes it at its epoch
                continue
            target = self.sessions.get(row["session_id"])
            if target is None and row["session_id"] in self._unrestored:
                continue  # kept with the session it is for (stored running, not rebuilt)
            self._row_parts[row["id"]] = row["part"]
            if target is None or not target.is_running:
                self._inbox_done.append(row["id"])
                continue
            event = decode_event(json.loads(row["event"]))
            if row["part"] in waiting:
                target.queue(event)  # processed when it runs (``adopted``)
            else:
                target.deliver(event)
            self._delivered.setdefault(target.id, []).append(row["id"])
        if taken:
            self.request_write()

    async def _take_own(self) -> None:
        """Take at once what was just handed over to sessions running here, so it reaches them
        before the events the batch being built releases (which came after it)."""
        try:
            await self._take()
        except Exception as e:  # the notification's take and the heartbeat's go on trying
            log.warning("taking events handed over to this node's own sessions failed (%s: %s)", type(e).__name__, e)

    async def _hand_over_sourced(self) -> bool:
        """Write the handoffs named by a source, each once (``send_to(..., source=...)``), before
        the batch whose waiters wait for them; retried like a batch. True when some are for
        partitions held here."""
        assert self.cluster is not None and self.store is not None
        sourced, self._sourced = self._sourced, []
        notify = sorted({(INBOX_CHANNEL, str(row["part"])) for _source, row in sourced})
        delay = 0.05
        while True:
            try:
                await rows.hand_over_sourced(self.store, self.cluster.fence(()), sourced, notify)
                return any(row["part"] in self._parts for _source, row in sourced)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._write_error = f"{type(e).__name__}: {e}"[:500]
                # Without a lease (cut off, or leaving) this is expected: what was handed over is
                # not acked to its sender, which sends it again (to the partition's next holder).
                level = logging.WARNING if isinstance(e, Fenced) and e.node_lost else logging.ERROR
                log.log(level, "handing over events failed (%s); retrying in %.2f s", self._write_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _is_disk_full(error: BaseException) -> bool:
    """SQLite says "database or disk is full"; PostgreSQL and the OS give ENOSPC / DiskFull."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        text = str(seen).lower()
        if "disk is full" in text or "no space left" in text or "diskfull" in type(seen).__name__.lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False
