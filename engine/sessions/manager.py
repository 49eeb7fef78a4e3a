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
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..jsonable import jsonable
from ..scxml import Event, Limits, Registry, Session, SessionHost
from ..scxml.clock import Clock
from ..scxml.session_state import SessionState
from ..scxml.snapshot import decode_event, decode_state, encode_event, encode_state
from ..storage import StorageUnavailable, Store, UnitOfWork, dumps
from . import rows
from .flows import FlowRegistry, FlowVersion

log = logging.getLogger("engine.sessions")
#: Ended-session descriptions kept in memory, without and with a store.
ENDED_KEPT = {False: 10_000, True: 1_000}
SYSTEM_EVENTS = {"error.": "the interpreter", "done.": "the interpreter"}


@dataclass
class SessionInfo:
    """What the manager knows of a session beyond the interpreter: its flow version."""

    flow: str
    version: int
    hash: str
    created_at: float
    persistent: bool = True
    parent_id: str | None = None


class BadStartData(ValueError):
    pass


class SessionManager(SessionHost):
    """A ``SessionHost`` that persists sessions and restores them on start."""

    def __init__(self, flows: FlowRegistry, store: Store | None, *, registry: Registry | None = None,
                 clock: Clock | None = None, limits: Limits | None = None, durability_timeout: float = 10.0,
                 reserved_events: dict[str, str] | None = None):
        super().__init__(registry=registry or flows.registry, clock=clock, limits=limits)
        self.flows = flows
        self.store = store
        self.durability_timeout = durability_timeout
        # name prefix -> who alone may raise such events; system events are the interpreter's
        self.reserved_events = {**SYSTEM_EVENTS, **(reserved_events or {})}
        self.info: dict[str, SessionInfo] = {}
        self.ended: dict[str, dict[str, Any]] = {}  # recently ended, for queries without the DB
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

    @property
    def persistent(self) -> bool:
        return self.store is not None

    # -- starting and stopping -------------------------------------------------------------
    async def open(self) -> None:
        """Restore every persisted session, then start the writer."""
        if self.store is not None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
            await self._restore_all()

    async def close(self) -> None:
        """Flush what is dirty, stop the writer and every timer. Bounded: with the database gone
        the changes not yet written are reported and left (the process must still stop)."""
        if self._writer is not None:
            try:
                await self.commit()
            except StorageUnavailable as e:
                log.error("stopping with changes not stored: %s", e)
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        await super().close()

    # -- sessions ----------------------------------------------------------------------------
    def start_flow(self, name: str, data: dict[str, Any] | None = None, *,
                   persistent: bool = True, before_start: Callable[[Session], None] | None = None) -> Session:
        """Start a session of a flow's current version; parameters become its data.

        A parameter matching a ``<data>`` id replaces its initial value; others become variables
        too (ORS semantics), except one the datamodel refuses (system variables) or one that would
        hide what every expression of the flow relies on (in a python flow a builtin such as
        ``str``): that is refused unless the flow itself declares the name.
        """
        fv = self.flows.get(name)
        data = dict(data or {})
        datamodel = fv.doc.datamodel
        bad = datamodel.refused_names(data)
        if bad:
            raise BadStartData(f"parameter names reserved by the datamodel: {', '.join(sorted(bad))}")
        declared = {d.id for d in fv.doc.root.data}
        shadowing = sorted(datamodel.shadowing(k for k in data if k not in declared))
        if shadowing:
            raise BadStartData(f"parameter names that would shadow {datamodel.name} builtins in flow {name!r}: "
                               f"{', '.join(shadowing)} (rename them, or declare them as <data>)")
        session = self._create(fv, data={k: v for k, v in data.items() if k in declared},
                               persistent=persistent)
        for key, value in data.items():
            if key not in declared:
                session.datamodel.declare(key, value)
        if before_start is not None:  # e.g. the callback service maps the session to its record
            before_start(session)
        for observe in self.on_session_start:
            observe(session, name, data)
        return session.start()

    def _create(self, fv: FlowVersion, *, data: dict[str, Any] | None, persistent: bool,
                parent: Session | None = None, invokeid: str | None = None) -> Session:
        session = super().create_session(fv.doc, data=data, parent=parent, invokeid=invokeid)
        self.info[session.id] = SessionInfo(fv.name, fv.version, fv.hash, time.time(), persistent,
                                            parent.id if parent is not None else None)
        return session

    def create_session(self, doc, *, data=None, parent=None, invokeid=None, session_id=None):
        """Sessions created by ``<invoke>``: children share their parent's persistence."""
        fv = self.flows.by_hash.get(doc.content_hash)
        if fv is None:
            fv, new = self.flows.child_version(doc)
            if new and self.store is not None:
                self._new_flows.append(self.flows.row(fv))
        persistent = self.info[parent.id].persistent if parent is not None and parent.id in self.info else True
        return self._create(fv, data=data, persistent=persistent, parent=parent, invokeid=invokeid)

    def describe(self, session_id: str) -> dict[str, Any] | None:
        """Status of a live or recently ended session, from memory."""
        session = self.sessions.get(session_id)
        if session is None:
            found = self.ended.get(session_id)
            # Made JSON-ready when asked for, not for every session that ends.
            return {**found, "datamodel": jsonable(found["datamodel"])} if found is not None else None
        return self._describe(session)

    async def find(self, session_id: str) -> dict[str, Any] | None:
        """Status of a live, recently ended or stored session (the last read from its stored
        state, which only this manager decodes)."""
        found = self.describe(session_id)
        if found is None and self.store is not None:
            found = await rows.describe_stored(self.store, session_id)
        return found

    def _describe(self, session: Session, ready: bool = True) -> dict[str, Any]:
        """``ready=False``: the datamodel as the session's own values (an ended session's, which
        no longer change), to be made JSON-ready only if somebody asks (``describe``)."""
        info = self.info.get(session.id)
        return {
            "sessionid": session.id,
            "flow": info.flow if info else session.doc.name,
            "version": info.version if info else None,
            "status": session.status,
            "active_states": session.active_state_ids(),
            "final_state": session.final_state,
            "datamodel": jsonable(session.variables) if ready else session.variables,
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
        self._new_inbox.append({"id": row_id, "session_id": target.id,
                                "event": dumps(encode_event(event)), "created_at": time.time()})
        self._held_events.append((row_id, target, event))
        self._changed()

    def emit(self, session: Session, kind: str, payload: dict[str, Any], *, durable: bool = True) -> None:
        if not self._durable(session) or not durable:
            # Nothing to redo after a restart, and nobody outside the process to act on a state
            # the store does not hold yet: carried out at once, without waiting for the commit.
            self.perform_effect(session.id, kind, payload)
            return
        row_id = self.store.new_id()  # type: ignore[union-attr]
        self._new_outbox.append({"id": row_id, "session_id": session.id, "kind": kind,
                                 "payload": dumps(payload), "created_at": time.time()})
        self._held_effects.append((row_id, session.id, kind, payload))
        self._changed()

    def refuses_external(self, name: str) -> str | None:
        for prefix, owner in self.reserved_events.items():
            if name.startswith(prefix):
                return f"event names starting {prefix!r} are reserved: only {owner} raises them"
        return None

    def request_write(self) -> None:
        """Something a batch contributor holds has changed; write it with the next batch."""
        self._changed()

    def session_changed(self, session: Session) -> None:
        if self._durable(session):
            self._dirty[session.id] = session
            self._changed()

    def session_ended(self, session: Session) -> None:
        if session.id in self.sessions:
            self.ended[session.id] = self._describe(session, ready=False)
            # Each description holds the session's datamodel (~3.5 KB): with a store, the stored
            # row answers for older ones, so only the latest few are kept (ENDED_KEPT).
            if len(self.ended) > ENDED_KEPT[self.store is not None]:
                self.ended.pop(next(iter(self.ended)))
        super().session_ended(session)
        if not self._durable(session):
            self.info.pop(session.id, None)

    # -- committing ----------------------------------------------------------------------------
    def _changed(self) -> None:
        if self._unwritten_since is None:
            self._unwritten_since = time.monotonic()
        self._wake.set()

    async def commit(self, timeout: float | None = None) -> None:
        """Return once everything that happened before the call is durable; raise
        ``StorageUnavailable`` when that takes longer than ``timeout`` (default: the manager's)."""
        if self._writer is None:
            return
        if self._writer.done():
            raise StorageUnavailable("the storage writer has stopped; see the engine log")
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._wake.set()
        limit = self.durability_timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            reason = self._write_error or "the storage writer is behind"
            raise StorageUnavailable(f"the change was not stored within {limit:g} s ({reason}); "
                                     "it is kept and will be stored when storage recovers") from None

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
        events, effects, waiters = self._held_events, self._held_effects, self._waiters
        self._dirty = {}
        self._new_inbox, self._new_outbox, self._new_flows = [], [], []
        self._inbox_done, self._outbox_done = [], []
        self._held_events, self._held_effects, self._waiters = [], [], []
        return batch, events, effects, waiters

    def _encode(self, session: Session) -> str:
        """The session's snapshot as JSON; a session whose state cannot be encoded is failed with
        the cause (its callback completes with FAIL_ERROR) and stored without its data."""
        try:
            return dumps(encode_state(session.to_state()))
        except Exception as e:  # RecursionError on data nested too deeply, a value JSON refuses...
            cause = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            log.error("session %s: its state cannot be stored (%s); the session is failed", session.id, cause)
            session.fail(f"its state cannot be stored: {cause}")
            self._dirty.pop(session.id, None)  # it is written now, in this batch
            return dumps(encode_state(session.to_bare_state()))

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
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
        try:
            batch, events, effects, waiters = self._build()
            if batch:
                started = time.perf_counter()
                await self._write(batch)
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
                if not future.done():
                    future.set_result(None)

    async def _write(self, batch: UnitOfWork) -> None:
        delay = 0.05
        while True:
            try:
                await self.store.write(batch)  # type: ignore[union-attr]
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
            if self._failing_since is not None:
                log.warning("storage writes succeed again after %.1f s", time.monotonic() - self._failing_since)
            self._write_error, self._failing_since, self.disk_full = None, None, False
            return

    def _release(self, events: list, effects: list) -> None:
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
        assert self.store is not None
        running = await rows.load_running(self.store)
        by_id = {r["id"]: r for r in running}

        def depth(row: dict[str, Any]) -> int:
            d, seen = 0, set()
            while row.get("parent_id") in by_id and row["id"] not in seen:
                seen.add(row["id"])
                row = by_id[row["parent_id"]]
                d += 1
            return d

        restored: list[tuple[Session, SessionState]] = []
        for row in sorted(running, key=depth):
            fv = self.flows.by_hash.get(row["flow_hash"])
            if fv is None:
                log.error("session %s: flow version %s is not stored; cannot restore", row["id"], row["flow_hash"])
                continue
            parent = self.sessions.get(row["parent_id"]) if row["parent_id"] else None
            try:
                state = decode_state(json.loads(row["snapshot"]))
                session = Session.from_state(self, fv.doc, row["id"], state, parent=parent)
            except Exception:
                log.exception("session %s could not be restored", row["id"])
                continue
            self.sessions[session.id] = session
            self.info[session.id] = SessionInfo(row["flow"], row["flow_version"], row["flow_hash"],
                                                row["created_at"], True, row["parent_id"])
            restored.append((session, state))
        for session, state in restored:
            session.link_invocations(state.invocations, self.sessions)
        inbox = await rows.load_inbox(self.store)
        for row in inbox:
            target = self.sessions.get(row["session_id"])
            if target is None or not target.is_running:
                self._inbox_done.append(row["id"])
                continue
            target.queue(decode_event(json.loads(row["event"])))
            self._delivered.setdefault(target.id, []).append(row["id"])
            self._dirty[target.id] = target
        for session, state in restored:
            session.resume(state.pending)
        outbox = await rows.load_outbox(self.store)
        for row in outbox:
            self._perform_tracked(row["id"], row["session_id"], row["kind"], json.loads(row["payload"]))
        log.info("restored %d sessions, %d events in flight, %d pending effects",
                 len(restored), len(inbox), len(outbox))
        self._wake.set()


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
