"""One running SCXML session: the W3C SCXML 1.0 event loop (Appendix D) around the algorithm.

``algorithm.py`` decides (which transitions an event enables, what a microstep exits and
enters); the session carries it out: it owns its configuration, its ``DataModel``, the queues,
history, pending delayed sends and invocations, runs executable content and fails when a guard
trips. Everything about the document lives in the shared ``Document``; what sessions of it learn
at run time, in the host's ``TransitionCache``. ``to_state``/``from_state`` turn a session into
a ``SessionState`` value and back.
Processing is synchronous: ``send`` runs macrosteps until the session waits again, and events
from other sessions or timers are queued and drained on the next turn of the event loop, so a
sender never waits for its receiver.

Fairness. Every session shares one event loop with the HTTP server, the storage writer and
every other session, so none may keep it for long:

* A *turn* (one call of ``start``/``send``/a scheduled drain) ends after
  ``Limits.macrosteps_per_turn`` macrosteps or ``Limits.turn_seconds`` of processing, whichever
  comes first. The session then yields: it puts itself in the host's ``TurnQueue`` (round-robin
  slices with pauses between them, see ``turns.py``) and returns. A turn ends before the next
  external event is taken, or between two microsteps while raised events wait (and no
  invocation waits to start), where a snapshot holds all that is left to do; nothing else is
  taken from the external queue until the macrostep is complete, so events are still processed
  one at a time, in order (W3C). What an observer may see is a configuration between two
  microsteps of a macrostep that ran longer than ``turn_seconds``. Every turn makes progress:
  at least the external event a synchronous ``send`` queued, and one microstep. A chain of
  eventless transitions is not cut (``max_microsteps`` bounds it).
* What cannot be cut is one microstep's executable content, so it is bounded:
  ``max_foreach_items`` ``<foreach>`` iterations in one macrostep in all (one loop, nested loops
  and repeated loops together; a loop is checked before its first iteration, so nothing of a
  refused loop runs and a huge collection is never copied). ``max_microsteps`` still fails a
  macrostep that never ends.
* A session may dispatch at most ``max_sends_per_second`` ``<send>`` events (any type and
  target, delayed or not) in any one-second window; a send over it is not sent.

Escalation, the same for the foreach and send budgets: going over one refuses the work with
``error.execution`` naming the limit, and the session may handle that and go on. Going over a
budget again within one second (``NOTICE_SECONDS``) of that error fails the session with the
cause in ``error``, the way ``max_microsteps`` does. So a self-send loop is stopped after a
second's worth of events, and one that keeps sending from its error handler ends.
What a python expression or script computes (``range(10**9)`` in a ``<script>``) is the flow
author's code: flows are trusted and these budgets do not reach inside it.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from .algorithm import by_order as _by_order
from .algorithm import exit_set, history_to_record, in_final
from .algorithm import select as select_transitions
from .datamodel import NO_VALUE
from .errors import CommunicationError, ExecutionError, SessionLimitError
from .events import AttrDict, Event
from .executable import SCXML_PROCESSOR, Action, DoneData, InvokeDef, SendRequest, build_data
from .interning import Interner
from .invokers import SCXML_INVOKE_TYPE, Invocation, start_invocation
from .model import FINAL, PARALLEL, ROOT, Document, StateNode, Transition
from .session_state import InvocationState, SessionState

if TYPE_CHECKING:
    from .clock import Clock
    from .limits import Limits
    from .ports import EventProcessor, Invoker
    from .transition_cache import TransitionCache

log = logging.getLogger("engine.scxml")
flow_log = logging.getLogger("engine.scxml.log")

RUNNING, FINISHED, CANCELLED, FAILED = "running", "finished", "cancelled", "failed"

# After an error.execution for a budget, going over one again this soon fails the session.
NOTICE_SECONDS = 1.0
SEND_WINDOW_SECONDS = 1.0
# Configurations idle sessions are in, each frozen once with its atomic states in document order:
# thousands of sessions wait in the same few configurations, and a set of its own cost each 216
# bytes (its atomic list 88 more). Cleared when full; sessions keep what they hold.
_CONFIGURATIONS: Interner[frozenset[StateNode], tuple[frozenset[StateNode], list[StateNode]]] = Interner(4096)


def _frozen_configuration(frozen: frozenset[StateNode]) -> tuple[frozenset[StateNode], list[StateNode]]:
    return frozen, sorted((s for s in frozen if s.is_atomic), key=_by_order)


class SessionHostPort(Protocol):
    """What a session needs of its host (``SessionHost`` is the one we have; a session may not
    import it, being the layer below). It lives here rather than in ``ports`` because it names the
    ``TransitionCache``, which the layers below the session must not reach."""

    clock: Clock
    limits: Limits

    @property
    def turns(self) -> _TurnScheduler: ...

    def transition_cache(self, doc: Document) -> TransitionCache: ...

    def ioprocessors_for(self, session: Session) -> Mapping[str, Any]: ...

    def processor_for(self, type_name: str) -> EventProcessor | None: ...

    def invoker_for(self, type_name: str) -> Invoker | None: ...

    def route_event(self, sender: Session | None, target: Session, event: Event) -> None: ...

    def session_changed(self, session: Session) -> None: ...

    def session_ended(self, session: Session) -> None: ...


class _TurnScheduler(Protocol):
    def add(self, session: Session) -> None: ...

    def soon(self, session: Session) -> None: ...


class Session:
    """A session of one document; create it through ``SessionHost``."""

    __slots__ = (
        "__weakref__",
        "_atomic",
        "_busy",
        "_cache",
        "_eventless",
        "_external",
        "_foreach_used",
        "_history",
        "_initial_data",
        "_internal",
        "_invocations",
        "_late_done",
        "_limit_notice",
        "_microsteps",
        "_pending",
        "_scheduled",
        "_send_count",
        "_send_window",
        "_sendseq",
        "_taken",
        "_to_invoke",
        "cancel_requested",
        "configuration",
        "datamodel",
        "depth",
        "doc",
        "done_data",
        "error",
        "final_ids",
        "host",
        "id",
        "invokeid",
        "parent",
        "status",
    )

    def __init__(
        self,
        host: SessionHostPort,
        doc: Document,
        session_id: str,
        *,
        parent: Session | None = None,
        invokeid: str | None = None,
        data: dict[str, Any] | None = None,
    ):
        self.host = host
        self.doc = doc
        self._cache = host.transition_cache(doc)
        self.id = session_id
        self.parent = parent
        self.invokeid = invokeid
        self.depth = 0 if parent is None else parent.depth + 1
        # The store refers back to the session only weakly, so a session is not a reference cycle:
        # once it ends and nothing holds it, it is freed at once, without the garbage collector.
        self.datamodel = doc.datamodel.new_session({
            "_sessionid": session_id,
            "_name": doc.name,
            "_ioprocessors": host.ioprocessors_for(self),
            "In": InPredicate(self),
        })
        # A set while it changes (a microstep), a shared frozenset while the session waits.
        self.configuration: set[StateNode] | frozenset[StateNode] = set()
        self.status = RUNNING
        self.error: str | None = None
        self.done_data: Any = None
        self.final_ids: Sequence[str] = ()  # replaced, never appended to: an idle session shares ()
        self.cancel_requested = False
        # A list, not a deque: internal queues stay tiny and an idle session stays small.
        self._internal: list[Event] = []
        self._external: deque[Event] | None = None
        self._taken = 0  # external events taken from the queue so far (tells send what became of its event)
        self._history: dict[str, list[StateNode]] | None = None
        self._to_invoke: set[StateNode] | None = None
        self._pending: dict[str, tuple[SendRequest, Any]] | None = None
        self._invocations: dict[str, Invocation] | None = None
        self._busy = False
        self._scheduled = False
        self._sendseq = 0
        self._late_done: set[str] | None = None
        self._atomic: list[StateNode] | None = None
        # Eventless candidates of the atomic states (only those that have some), per configuration.
        self._eventless: tuple[tuple[Transition, ...], ...] | None = None
        self._microsteps = 0
        self._foreach_used = 0  # <foreach> iterations in the current macrostep
        self._send_window = 0.0  # monotonic start of the current one-second send window
        self._send_count = 0
        self._limit_notice = 0.0  # monotonic time of the last error.execution for a budget
        self._initial_data = data

    # ------------------------------------------------------------------ public API
    @property
    def is_running(self) -> bool:
        return self.status == RUNNING

    @property
    def has_queued_events(self) -> bool:
        """Whether events wait in the internal or external queue (the session has work left)."""
        return bool(self._internal or self._external)

    @property
    def variables(self) -> dict[str, Any]:
        """The author's variables (a copy, for queries and tests; the datamodel holds them)."""
        return self.datamodel.variables()

    @property
    def final_state(self) -> str | None:
        """Id of the top-level final state the session ended in, if it did."""
        by_id = self.doc.by_id
        for sid in self.final_ids:
            node = by_id.get(sid)
            if node is not None and node.kind == FINAL and node.parent.kind == ROOT:  # type: ignore[union-attr]
                return sid
        return None

    def active_state_ids(self) -> list[str]:
        """Active states in document order (the final configuration once the session ended)."""
        if self.status != RUNNING and not self.configuration:
            return list(self.final_ids)
        return [s.id for s in sorted(self.configuration, key=_by_order)]

    def start(self) -> Session:
        """Initialise the datamodel, enter the initial states and run until the session waits."""
        self._process(self._begin)
        return self

    def _begin(self) -> None:
        self._init_datamodel()
        self._run_block(self.doc.script)
        self._microsteps = self._foreach_used = 0
        self._enter_states([self.doc.root.initial])  # type: ignore[list-item]
        self._run()

    def send(self, name: str, data: Any = None, **fields: Any) -> int:
        """Queue an external event and process it now (the synchronous entry point). Returns a
        ticket for ``took``: a session may end (reach a final state with events still queued, or
        be cancelled) before it takes the event, which is then gone, and a caller that answers a
        client must not say it was delivered."""
        event = Event(name, data, **fields)
        if self.status != RUNNING:
            return -1
        ticket = self._taken + (len(self._external) if self._external else 0) + 1
        self.queue(event)
        if not self._busy:
            self._drain()
        return ticket

    def took(self, ticket: int) -> bool:
        """Whether the event ``send`` gave this ticket for was taken, or still waits in a running
        session's queue (so it is in the session's state and will be taken)."""
        return ticket > 0 and (self._taken >= ticket or self.status == RUNNING)

    def deliver(self, event: Event) -> None:
        """Queue an external event from elsewhere; it is processed on a later loop turn."""
        if self.status != RUNNING:
            return
        self.queue(event)
        self._schedule()

    def cancel(self) -> None:
        """Stop the session as a cancelled invocation or a terminate request (W3C 6.4.4)."""
        if self.status != RUNNING:
            return
        self.cancel_requested = True
        if self._busy:
            return  # the running loop sees the flag at the end of its macrostep
        self._busy = True
        try:
            self._exit_interpreter(CANCELLED)
        finally:
            self._busy = False
        self._after_processing()

    def in_state(self, state_id: str) -> bool:
        node = self.doc.by_id.get(state_id)
        return node is not None and node in self.configuration

    # ------------------------------------------------------------------ state as a value
    def to_state(self, *, for_snapshot: bool = False) -> SessionState:
        """This session as a value (taken between macrosteps, or between the microsteps of a
        macrostep cut by fairness); ``from_state`` makes it a session again. ``ValueError`` when
        its datamodel cannot be hibernated. ``for_snapshot``: for ``snapshot.snapshot_json`` only,
        the variables the datamodel keeps as plain JSON text stay that text (``data_text``)."""
        if not self.datamodel.can_hibernate:
            raise ValueError(f"the {self.doc.datamodel.name} datamodel of this session cannot be stored")
        invocations = []
        if self._invocations:
            for inv in self._invocations.values():
                handle = inv.handle
                child = handle.id if isinstance(handle, Session) else None
                invocations.append(InvocationState(
                    inv.invokeid, inv.state.id, inv.state.invokes.index(inv.definition), child,
                    None if child is not None else inv.invoker.save(inv), inv.finished,
                ))
        history = self._history
        data, data_text = self.datamodel.stored_variables() if for_snapshot else (self.datamodel.variables(), None)
        # Taken after every macrostep the host stores: the fields in their order, the empty parts
        # without a comprehension (by keyword, building the value cost as much as the rest of it).
        return SessionState(
            self.status,
            [s.id for s in self.configuration],
            data,
            [],  # lost: known only once encoded
            {k: [s.id for s in v] for k, v in history.items()} if history else {},
            list(self._internal),
            list(self._external) if self._external else [],
            self.pending_sends(),
            invocations,
            sorted(self._late_done) if self._late_done else [],
            self._sendseq,
            self.parent.id if self.parent is not None else None,
            self.invokeid,
            list(self.final_ids),
            self.done_data,
            self.error,
            self.cancel_requested,
            data_text,
        )

    def to_bare_state(self) -> SessionState:
        """What is kept of a session whose own state cannot be stored (it has been failed for
        that): how it ended, without data, queues, timers or invocations."""
        return SessionState(
            status=self.status, sendseq=self._sendseq, parent=self.parent.id if self.parent is not None else None,
            invokeid=self.invokeid, final_ids=list(self.final_ids), error=self.error,
            cancel_requested=self.cancel_requested,
        )

    @classmethod
    def from_state(cls, host: SessionHostPort, doc: Document, session_id: str, state: SessionState, *,
                   parent: Session | None = None) -> Session:
        """A session rebuilt from ``state``, idle: its invocations are attached by
        ``link_invocations`` once every session of the host is rebuilt, its delayed sends (held
        from now on, in its snapshots too) armed and its queues drained by ``resume``."""
        session = cls(host, doc, session_id, parent=parent, invokeid=state.invokeid)
        session.status = state.status
        by_id = doc.by_id
        session.configuration = {by_id[s] for s in state.configuration}
        session._share_configuration()
        data = dict(state.data)
        if state.lost:
            data.update(session._recover_lost(state.lost))
        session.datamodel.restore(data)
        if state.history:
            session._history = {k: [by_id[s] for s in v] for k, v in state.history.items()}
        session._internal = list(state.internal)
        if state.external:
            session._external = deque(state.external)
        session._late_done = set(state.late_done) or None
        session._sendseq = state.sendseq
        if state.pending:  # held unarmed until ``resume``: a snapshot taken before it must keep them
            session._pending = {req.sendid: (req, None) for req in state.pending}
        session.final_ids = list(state.final_ids)
        session.done_data = state.done_data
        session.error = state.error
        session.cancel_requested = state.cancel_requested
        return session

    def _recover_lost(self, names: list[str]) -> dict[str, Any]:
        """Functions and classes come back by running the top-level scripts in a scratch store."""
        if not self.doc.script:
            log.warning("session %s: values of %s could not be stored and are gone", self.id, names)
            return {n: None for n in names}
        scratch = Session(self.host, self.doc, self.id)
        scratch.datamodel = self.doc.datamodel.new_session({"In": InPredicate(self), "_sessionid": self.id,
                                                            "_name": self.doc.name, "_ioprocessors": {}})
        scratch._busy = True
        scratch._run_block(self.doc.script)
        made = scratch.datamodel.variables()
        out = {}
        for name in names:
            if name in made:
                out[name] = made[name]
            else:
                log.warning("session %s: value of %s could not be stored and is gone", self.id, name)
                out[name] = None
        return out

    def link_invocations(self, records: Iterable[InvocationState], sessions: Mapping[str, Session]) -> None:
        """Re-attach a rebuilt session's invocations to their rebuilt child sessions (or custom
        invokers); a child that is gone counts as finished."""
        invoker_for = self.host.invoker_for
        for rec in records:
            state = self.doc.by_id[rec.state]
            definition = state.invokes[rec.index]
            invoker = invoker_for(definition.type or SCXML_INVOKE_TYPE) or invoker_for(SCXML_INVOKE_TYPE)
            if invoker is None:
                raise ValueError(f"session {self.id}: no invoker for the invocation {rec.invokeid!r}")
            invocation = Invocation(rec.invokeid, state, definition, invoker)
            invocation.finished = rec.finished
            if rec.child is not None:
                invocation.handle = sessions.get(rec.child)
                if invocation.handle is None:
                    invocation.finished = True
            else:
                invoker.restore(invocation, rec.handle)
            self.add_invocation(invocation)

    def resume(self) -> None:
        """Arm a rebuilt session's delayed sends at their due times (overdue ones fire at once)
        and process, on a later loop turn, whatever was queued when its state was taken.
        ``from_state`` holds the sends from the start, unarmed, so a snapshot taken before this
        (the manager's writer may store a restored session before it runs) keeps them."""
        held = self._pending
        if held:
            clock = self.host.clock
            for sendid, (req, handle) in list(held.items()):
                if handle is None:  # not armed yet
                    held[sendid] = (req, clock.call_at(req.due, self._fire_delayed, sendid))
        if self.status == RUNNING and (self._internal or self._external or self.cancel_requested):
            self._schedule()

    # ------------------------------------------------------------------ queues
    def queue(self, event: Event) -> None:
        """Put an external event on the queue without processing it: for a rebuilt session,
        before ``resume`` (which processes it)."""
        q = self._external
        if q is None:
            q = self._external = deque()
        q.append(event)

    def raise_internal(self, event: Event) -> None:
        """An internal event raised during a macrostep (``<raise>``, ``#_internal``)."""
        self._internal.append(event)

    def post_internal(self, event: Event) -> None:
        """An internal event from outside a macrostep (a delayed ``#_internal`` send): queued,
        and processed on a later loop turn."""
        self._internal.append(event)
        self._schedule()

    def post_error(self, name: str, message: str, sendid: str | None = None) -> None:
        """An error found outside a macrostep (a timer's dispatch, an HTTP reply)."""
        self.post_internal(_error_event(name, message, sendid))

    def _schedule(self) -> None:
        if self._busy or self._scheduled or self.status != RUNNING:
            return
        self._scheduled = True
        self.host.turns.soon(self)

    def drain_scheduled(self) -> None:
        """Process what was queued (the host's turn queue calls this on a later loop iteration)."""
        self._scheduled = False
        if not self._busy:
            self._drain()

    def continue_turn(self, until: float) -> None:
        """The host's turn queue gives this session a turn that ends by ``until`` at the latest."""
        self._scheduled = False
        if self.status == RUNNING and not self._busy:
            self._process(lambda: self._run(until))

    def _drain(self) -> None:
        self._process(self._run)

    def _process(self, step: Callable[[], None]) -> None:
        """Run one burst of processing; a tripped guard fails the session instead of hanging it."""
        self._busy = True
        began = time.perf_counter()
        try:
            step()
        except SessionLimitError as e:
            self._fail(str(e))
        finally:
            self._busy = False
        if self.status == RUNNING:
            self._share_configuration()
        self.host.processed(self, time.perf_counter() - began)
        self._after_processing()

    def _share_configuration(self) -> None:
        """Hold the shared frozen copy of the configuration (and its atomic states) while idle."""
        config = self.configuration
        if type(config) is frozenset:
            return
        self.configuration, self._atomic = _CONFIGURATIONS.get(frozenset(config), _frozen_configuration)

    def _changing_configuration(self) -> set[StateNode]:
        """The configuration as a set of this session's own, to change."""
        config = self.configuration
        if type(config) is not set:
            config = self.configuration = set(config)
        return config

    def _after_processing(self) -> None:
        """Tell the host this session changed (it may persist it) and whether it ended."""
        self.host.session_changed(self)
        if self.status != RUNNING:
            self.host.session_ended(self)

    # ------------------------------------------------------------------ main loop
    def _run(self, until: float | None = None) -> None:
        """W3C mainEventLoop, returning when the session must wait for an external event or
        has used up its turn (then it goes on from the same place on a later loop turn)."""
        limits = self.host.limits
        macrosteps = 0
        turn_ends = time.perf_counter() + limits.turn_seconds
        if until is not None:
            turn_ends = min(turn_ends, until)
        while self.status == RUNNING:
            if not self._macrostep(turn_ends):
                self._yield_turn()
                return
            if self.status != RUNNING:
                break
            if self.cancel_requested:
                self._exit_interpreter(CANCELLED)
                return
            if self._to_invoke:
                self._start_invokes()
                if self._internal:
                    continue
            ext = self._external
            if not ext:
                return
            # Every turn takes at least one external event, so a synchronous send is processed.
            if macrosteps and (macrosteps >= limits.macrosteps_per_turn or time.perf_counter() >= turn_ends):
                self._yield_turn()
                return
            macrosteps += 1
            event = ext.popleft()
            if not ext:  # an empty deque still holds a 0.6 KB block: a waiting session keeps none
                self._external = None
            self._taken += 1
            self._microsteps = self._foreach_used = 0
            self.datamodel.set_event(event)
            if self._invocations:
                self._finalize_and_forward(event)
            enabled = self._select(event.name)
            if enabled:
                self._microstep(enabled)
        if self.status == FINISHED:
            self._exit_interpreter(FINISHED)

    def _yield_turn(self) -> None:
        """Let the loop run everything else, then go on: the queues keep their order."""
        if not self._scheduled:
            self._scheduled = True
            self.host.turns.add(self)

    def _macrostep(self, turn_ends: float = float("inf")) -> bool:
        """Eventless transitions and internal events until the configuration is stable (True),
        or until the turn is over (False: the rest of the macrostep runs on the next turn)."""
        internal = self._internal
        while self.status == RUNNING:
            enabled = self._select_eventless()
            if not enabled:
                if not internal:
                    return True
                event = internal.pop(0)
                self.datamodel.set_event(event)
                enabled = self._select(event.name)
                if not enabled:
                    # An event nothing takes is still a step: a document whose eventless
                    # conditions keep raising errors must not spin here for ever.
                    self._count_step(f"event {event.name!r} that no transition takes")
                    continue
            self._microstep(enabled)
            # Cut only where a snapshot holds all that is left to do: raised events waiting (a
            # restored session is drained again) and no invocation waiting to start.
            if internal and not self._to_invoke and time.perf_counter() >= turn_ends:
                return self.status != RUNNING
        return True

    def _count_step(self, last: Transition | str) -> None:
        self._microsteps += 1
        if self._microsteps > self.host.limits.max_microsteps:
            what = last if isinstance(last, str) else f"transition from {last.source.id!r} at line {last.line}"
            raise SessionLimitError(
                f"more than {self.host.limits.max_microsteps} steps in one macrostep (an endless loop of "
                f"eventless transitions or raised events?); last: {what}"
            )

    # ------------------------------------------------------------------ selection
    def _atomic_states(self) -> list[StateNode]:
        atomic = self._atomic
        if atomic is None:
            atomic = self._atomic = [s for s in self.configuration if s.is_atomic]
            if len(atomic) > 1:
                atomic.sort(key=_by_order)
        return atomic

    def _select(self, name: str) -> list[Transition]:
        atomic = self._atomic_states()
        cache = self._cache
        if len(atomic) == 1:
            groups: Sequence[tuple[Transition, ...]] = (cache.candidates(atomic[0], name),)
        else:
            groups = [cache.candidates(s, name) for s in atomic]
        return select_transitions(groups, self._cond, self.configuration, self._history)

    def _select_eventless(self) -> list[Transition]:
        groups = self._eventless
        if groups is None:
            # A tuple: when empty (the common case) it is the shared empty tuple, so idle sessions stay small.
            atomic = self._atomic_states()
            if len(atomic) == 1:  # most configurations: no generator to build
                eventless = atomic[0].eventless
                groups = self._eventless = (eventless,) if eventless else ()
            else:
                groups = self._eventless = tuple(s.eventless for s in atomic if s.eventless)
        if not groups:
            return []
        return select_transitions(groups, self._cond, self.configuration, self._history)

    def _cond(self, t: Transition) -> bool:
        try:
            return self.datamodel.test(t.cond)
        except ExecutionError as e:
            self._internal.append(_error_event("error.execution", str(e)))
            return False

    # ------------------------------------------------------------------ microstep
    def _microstep(self, enabled: list[Transition]) -> None:
        self._count_step(enabled[0])
        self._changing_configuration()
        self._exit_states(enabled)
        for t in enabled:
            if t.actions:
                self._run_block(t.actions)
        self._enter_states(enabled)
        self._atomic = self._eventless = None

    def _exit_states(self, enabled: list[Transition]) -> None:
        leaving = exit_set(enabled, self.configuration, self._history)
        if not leaving:
            return
        # as algorithm.exit_order; one state (the common case) needs no sorting
        to_exit = sorted(leaving, key=_by_order, reverse=True) if len(leaving) > 1 else list(leaving)
        if self._to_invoke:
            self._to_invoke.difference_update(leaving)
        if self.doc.has_history:
            recorded = history_to_record(to_exit, self.configuration)
            if recorded:
                if self._history is None:
                    self._history = {}
                self._history.update(recorded)
        for s in to_exit:
            self._exit_one(s)

    def _exit_one(self, s: StateNode) -> None:
        """Run a state's exit handlers, cancel its invocations and leave it."""
        for block in s.onexit:
            self._run_block(block)
        if s.invokes and self._invocations:
            self._cancel_invokes(s)
        self.configuration.discard(s)  # type: ignore[union-attr]  # a set: see _changing_configuration

    def _enter_states(self, enabled: list[Transition]) -> None:
        cached = self._cache.entries.get(enabled[0]) if len(enabled) == 1 else None
        if cached is None:
            cached = self._cache.entry_set(enabled, self._history)
        to_enter, default_entry, history_content = cached
        config = self._changing_configuration()
        late = self.doc.uses_late_data
        for s in to_enter:
            config.add(s)
            if s.invokes:
                if self._to_invoke is None:
                    self._to_invoke = set()
                self._to_invoke.add(s)
            if late and s.data:
                self._init_late(s)
            for block in s.onentry:
                self._run_block(block)
            if default_entry and s in default_entry:
                self._run_block(s.initial.actions)  # type: ignore[union-attr]
            if history_content:
                content = history_content.get(s.id)
                if content:
                    self._run_block(content)
            if s.kind == FINAL:
                parent = s.parent
                if parent.kind == ROOT:  # type: ignore[union-attr]
                    self.status = FINISHED
                    self.final_ids = [x.id for x in sorted(config, key=_by_order)]
                else:
                    self._internal.append(
                        Event("done.state." + parent.id, self._donedata(s.donedata), type="internal")  # type: ignore[union-attr]
                    )
                    grand = parent.parent  # type: ignore[union-attr]
                    if grand.kind == PARALLEL and all(in_final(c, config) for c in grand.children):
                        self._internal.append(Event("done.state." + grand.id, type="internal"))

    # ------------------------------------------------------------------ executable content
    def _run_block(self, block: tuple[Action, ...]) -> None:
        """Run one block; the first error stops it and queues error.execution (W3C 4.9)."""
        try:
            for action in block:
                action.execute(self)
        except ExecutionError as e:
            log.debug("error.execution in %s: %s", self.id, e)
            self._internal.append(_error_event("error.execution", str(e), e.sendid))
        except SessionLimitError:
            raise
        except Exception as e:  # a custom action's own bug must not kill the engine
            log.exception("executable content failed in session %s", self.id)
            self._internal.append(_error_event("error.execution", f"{type(e).__name__}: {e}"))

    def evaluate(self, expr: Any) -> Any:
        return self.datamodel.evaluate(expr)

    def log_message(self, label: str | None, value: Any, has_value: bool = True) -> None:
        if label and has_value:
            label = label.rstrip()
            text = f"{label}{' ' if label.endswith(':') else ': '}{value!s}"
        elif label:
            text = label
        else:
            text = str(value) if has_value else ""
        flow_log.info(text, extra={"session_id": self.id, "label": label})

    def _donedata(self, donedata: DoneData | None) -> Any:
        if donedata is None:
            return None
        try:
            return build_data(self, donedata.namelist, donedata.params, donedata.content)
        except ExecutionError as e:
            self._internal.append(_error_event("error.execution", str(e)))
            return None

    # ------------------------------------------------------------------ data
    def _init_datamodel(self) -> None:
        doc = self.doc
        if doc.binding == "early":
            self._declare(doc.root.data)
            for s in doc.states:
                if s.data:
                    self._declare(s.data)
        else:
            for s in doc.states:
                for decl in s.data:
                    self.datamodel.declare(decl.id, NO_VALUE)
            self._declare(doc.root.data)
        self._initial_data = None

    def _init_late(self, s: StateNode) -> None:
        done = self._late_done
        if done is None:
            done = self._late_done = set()
        if s.id not in done:
            done.add(s.id)
            self._declare(s.data)

    def _declare(self, decls: tuple) -> None:
        given = self._initial_data
        ready: dict[str, Any] = {}  # given values, declared together before the next expression runs
        for decl in decls:
            if given is not None and decl.id in given:
                ready[decl.id] = given[decl.id]
                continue
            if ready:
                self.datamodel.declare_all(ready)
                ready = {}
            try:
                if decl.error is not None:
                    raise ExecutionError(decl.error)
                if decl.expr is not None:
                    value = self.datamodel.evaluate(decl.expr)
                elif decl.value_factory is not None:
                    value = decl.value_factory()
                else:
                    value = NO_VALUE
            except ExecutionError as e:
                self._internal.append(_error_event("error.execution", str(e)))
                value = NO_VALUE  # W3C 5.3: the variable is created, empty
            self.datamodel.declare(decl.id, value)
        if ready:
            self.datamodel.declare_all(ready)

    # ------------------------------------------------------------------ sends
    def next_serial(self) -> int:
        self._sendseq += 1
        return self._sendseq

    def new_sendid(self) -> str:
        return f"{self.id}.{self.next_serial()}"

    def dispatch(self, req: SendRequest) -> None:
        """Send now, or arm a timer for a delayed send (W3C 6.2)."""
        processor = self.host.processor_for(req.type)
        if processor is None:
            err = ExecutionError(f"line {req.line}: unknown send type {req.type!r}")
            err.sendid = req.sendid
            raise err
        self._count_send(req)
        try:
            processor.check(self, req)
        except CommunicationError as e:
            self._internal.append(_error_event("error.communication", str(e), req.sendid))
            return
        except ExecutionError as e:
            e.sendid = req.sendid
            raise
        if req.delay > 0:
            clock = self.host.clock
            req.due = clock.now() + req.delay
            handle = clock.call_at(req.due, self._fire_delayed, req.sendid)
            if self._pending is None:
                self._pending = {}
            self._pending[req.sendid] = (req, handle)
            return
        self._deliver_send(processor, req)

    def _count_send(self, req: SendRequest) -> None:
        """The send-rate budget: a fixed one-second window that opens with its first send."""
        now = time.monotonic()
        if now - self._send_window >= SEND_WINDOW_SECONDS:
            self._send_window = now
            self._send_count = 0
        self._send_count += 1
        limit = self.host.limits.max_sends_per_second
        if self._send_count > limit:
            self.over_budget(f"line {req.line}: event {req.name!r} not sent: the session sent more than "
                             f"{limit} events within one second (limit max_sends_per_second)")

    def reserve_iterations(self, count: int, line: int, exact: bool = True) -> None:
        """The foreach budget: ``count`` more iterations in this macrostep, or a refusal."""
        limit = self.host.limits.max_foreach_items
        if self._foreach_used + count > limit:
            size = f"{count}" if exact else f"more than {count - 1}"
            self.over_budget(f"line {line}: foreach over {size} items refused: more than {limit} foreach "
                             f"iterations in one macrostep (limit max_foreach_items); none of it ran")
        self._foreach_used += count

    def foreach_room(self) -> int:
        """Iterations this macrostep may still run (to size a collection without copying it)."""
        return max(0, self.host.limits.max_foreach_items - self._foreach_used)

    def over_budget(self, message: str) -> NoReturn:
        """error.execution the first time; failing the session if it happens again too soon."""
        now = time.monotonic()
        if self._limit_notice and now - self._limit_notice < NOTICE_SECONDS:
            raise SessionLimitError(f"{message}; again within {NOTICE_SECONDS:g} s of an error.execution "
                                    f"for a budget")
        self._limit_notice = now
        log.warning("session %s over budget: %s", self.id, message)
        raise ExecutionError(message)

    def _deliver_send(self, processor: EventProcessor, req: SendRequest) -> None:
        try:
            processor.send(self, req)
        except CommunicationError as e:
            self._internal.append(_error_event("error.communication", str(e), req.sendid))
        except ExecutionError as e:
            e.sendid = req.sendid
            raise

    def _fire_delayed(self, sendid: str) -> None:
        pending = self._pending.pop(sendid, None) if self._pending else None
        if pending is None or self.status != RUNNING:
            return
        req = pending[0]
        processor = self.host.processor_for(req.type)
        try:
            if processor is None:  # a rebuilt session's send, in a host that no longer has its type
                raise ExecutionError(f"line {req.line}: unknown send type {req.type!r}")
            processor.send(self, req)
        except CommunicationError as e:
            self.post_error("error.communication", str(e), req.sendid)
        except ExecutionError as e:
            self.post_error("error.execution", str(e), req.sendid)
        if not self._busy:
            self.host.session_changed(self)  # the pending send is gone even if nothing else moved

    def cancel_send(self, sendid: str) -> None:
        pending = self._pending.pop(sendid, None) if self._pending else None
        if pending is not None and pending[1] is not None:  # None: not armed yet (``resume``)
            pending[1].cancel()

    def pending_sends(self) -> list[SendRequest]:
        return [req for req, _ in self._pending.values()] if self._pending else []

    # ------------------------------------------------------------------ invocations
    def _start_invokes(self) -> None:
        states = sorted(self._to_invoke, key=_by_order)  # type: ignore[arg-type]
        self._to_invoke = None
        for s in states:
            for inv in s.invokes:
                self._invoke(s, inv)

    def _invoke(self, state: StateNode, inv: InvokeDef) -> None:
        try:
            start_invocation(self, state, inv, self.host.invoker_for)
        except ExecutionError as e:
            self._internal.append(_error_event("error.execution", str(e)))

    def add_invocation(self, invocation: Invocation) -> None:
        if self._invocations is None:
            self._invocations = {}
        self._invocations[invocation.invokeid] = invocation

    def _cancel_invokes(self, state: StateNode) -> None:
        invocations = self._invocations
        for invokeid, invocation in list(invocations.items()):  # type: ignore[union-attr]
            if invocation.state is state:
                del invocations[invokeid]  # type: ignore[union-attr]
                invocation.cancel()

    def invocation_finished(self, invokeid: str) -> None:
        """The child ended; finalize still applies to its queued events (W3C D, mainEventLoop)."""
        invocation = self._invocations.get(invokeid) if self._invocations else None
        if invocation is not None:
            invocation.finished = True

    def drop_invocation(self, invokeid: str) -> None:
        if self._invocations:
            self._invocations.pop(invokeid, None)

    def invocation(self, invokeid: str) -> Invocation | None:
        invocation = self._invocations.get(invokeid) if self._invocations else None
        return None if invocation is None or invocation.finished else invocation

    def _finalize_and_forward(self, event: Event) -> None:
        for invocation in list(self._invocations.values()):  # type: ignore[union-attr]
            if invocation.state not in self.configuration:
                continue
            if event.invokeid == invocation.invokeid and invocation.definition.finalize:
                self._run_block(invocation.definition.finalize)
            if invocation.definition.autoforward and not invocation.finished:
                try:
                    invocation.forward(event.copy())
                except (CommunicationError, ExecutionError) as e:
                    self._internal.append(_error_event("error.communication", str(e)))

    # ------------------------------------------------------------------ ending
    def _exit_interpreter(self, status: str) -> None:
        """Exit every active state (W3C exitInterpreter) and tell the parent if finished."""
        final_state = None
        to_exit = sorted(self._changing_configuration(), key=_by_order, reverse=True)
        if not self.final_ids:
            self.final_ids = [s.id for s in reversed(to_exit)]
        self.status = status
        for s in to_exit:
            self._exit_one(s)
            if s.kind == FINAL and s.parent.kind == ROOT:  # type: ignore[union-attr]
                final_state = s
        self._atomic = self._eventless = None
        if self._invocations:
            for invocation in list(self._invocations.values()):
                invocation.cancel()
            self._invocations = None
        self.cancel_timers()
        if final_state is not None and status == FINISHED:
            self.done_data = self._donedata(final_state.donedata)
        if self.parent is not None and status == FINISHED and not self.cancel_requested:
            self.host.route_event(self, self.parent, Event(
                "done.invoke." + self.invokeid, self.done_data, invokeid=self.invokeid,  # type: ignore[operator]
                origin="#_scxml_" + self.id, origintype=SCXML_PROCESSOR,
            ))
        if self.parent is not None:
            self.parent.invocation_finished(self.invokeid)  # type: ignore[arg-type]

    def cancel_timers(self) -> None:
        """Drop every delayed send not yet sent (the session ended, or its host closes)."""
        if self._pending:
            for _, handle in self._pending.values():
                if handle is not None:  # None: a rebuilt session's, not armed yet (``resume``)
                    handle.cancel()
            self._pending = None

    def _fail(self, message: str) -> None:
        """End the session because a guard tripped; its parent fails with it."""
        if self.status in (CANCELLED, FAILED):
            return
        log.error("session %s failed: %s", self.id, message)
        self.error = message
        self.final_ids = [s.id for s in sorted(self.configuration, key=_by_order)]
        self.status = FAILED
        self.configuration = set()
        if self._invocations:
            for invocation in list(self._invocations.values()):
                invocation.cancel()
            self._invocations = None
        self.cancel_timers()
        if self.parent is not None and self.parent.status == RUNNING:
            self.parent.child_failed(self, message)

    def fail(self, message: str) -> None:
        """End the session from outside (its host cannot store its state, say); the host is told
        as for any other end, so whatever depends on the session learns why."""
        if self.status != RUNNING:
            return
        self._fail(message)
        if not self._busy:
            self._after_processing()

    def child_failed(self, child: Session, message: str) -> None:
        self._fail(f"invoked session {child.invokeid!r} failed: {message}")
        if not self._busy:
            self._after_processing()

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.status} {self.active_state_ids()}>"


class InPredicate:
    """``In('state')`` for the datamodel, holding its session weakly."""

    __slots__ = ("_session",)

    def __init__(self, session: Session):
        self._session = weakref.ref(session)

    def __call__(self, state_id: str) -> bool:
        session = self._session()
        return session is not None and session.in_state(state_id)


def _error_event(name: str, message: str, sendid: str | None = None) -> Event:
    return Event(name, AttrDict(message=message), type="platform", sendid=sendid)

