"""The callback record's lifecycle (GMS ``_callback_state``): a python-statemachine chart, run as a table.

Only legal state changes are possible: the callback service changes ``_callback_state`` solely
through :class:`Lifecycle`. :class:`CallbackChart` declares the states, the transitions, the
validators of the completion reason and how the reason is set; :class:`ChartAnnouncer` is the
chart's listener that turns its hooks into the seed's ``_cbe_on_callback_*`` service events.

Cost: a python-statemachine instance takes about a millisecond to build and more to run, and a
record changes state several times in its life. So the chart is not run on the hot path: at import
its transitions are read into a table (:data:`STEPS`, state x event -> target, validators, what
is announced), and :class:`Lifecycle` executes that table. The chart stays the declaration and the
reference: :func:`run_on_chart` drives a real chart instance, and the tests prove the table gives
the same state, reason, announcements and refusals on every state x event pair.

Transitions (event: from -> to)::

    submit      SCHEDULED -> QUEUED          (its flow session was started)
    reschedule  SCHEDULED -> SCHEDULED
    route       QUEUED -> ROUTING            (customer reached, waiting for an agent)
    process     ROUTING or QUEUED -> PROCESSING
    pause       QUEUED -> PAUSED
    resume      PAUSED -> QUEUED
    requeue     ROUTING -> QUEUED            (agent lost: back to the queue)
    complete    any but COMPLETED -> COMPLETED, with a reason
    cancel      any but COMPLETED -> COMPLETED, reason CANCELLED

What a change announces, in order: ``submitted`` (before leaving SCHEDULED), ``status_updated``
(on entering a different state, so it already carries a completion reason), then the event's own
outcome (``queued``, ``rescheduled``) and ``cancelled`` when it completed with reason CANCELLED.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, NoReturn

from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed

from .vocabulary import CallbackState, CompletionReason

__all__ = [
    "EVENTS",
    "STEPS",
    "CallbackChart",
    "CallbackState",
    "ChartAnnouncer",
    "CompletionReason",
    "IllegalTransition",
    "InvalidReason",
    "Lifecycle",
    "LifecycleError",
    "LifecycleListener",
    "Step",
    "allowed_events",
    "event_between",
    "run_on_chart",
]

log = logging.getLogger("engine.callbacks.lifecycle")

_REASONS = frozenset(reason.value for reason in CompletionReason)
_STATES = frozenset(state.value for state in CallbackState)


class LifecycleError(ValueError):
    """Base of the lifecycle's refusals; a ValueError so the API answers 400, not 500."""


class IllegalTransition(LifecycleError):
    """The event is not legal in the callback's current state (nothing was changed)."""


class InvalidReason(LifecycleError):
    """A completion reason is missing, unknown, or given to an event that takes none."""


LifecycleListener = Callable[[str, dict[str, Any]], None]
"""``listener(event_name, details)``: event_name is a ``_cbe_on_callback_*`` service event."""

# Service-event names (seed 000, "Reference for Notification Events").
SCHEDULED_EVENT = "_cbe_on_callback_scheduled"
RESCHEDULED_EVENT = "_cbe_on_callback_rescheduled"
CANCELLED_EVENT = "_cbe_on_callback_cancelled"
STATUS_UPDATED_EVENT = "_cbe_on_callback_status_updated"
SUBMITTED_EVENT = "_cbe_on_callback_submitted"
RESUBMITTED_EVENT = "_cbe_on_callback_resubmitted"
SUBMIT_FAILED_EVENT = "_cbe_on_callback_submit_failed"
PROCESSING_FAILED_EVENT = "_cbe_on_callback_processing_failed"
QUEUED_EVENT = "_cbe_on_callback_queued"

# What the chart announces besides status_updated, read by its listener and by the table alike.
ANNOUNCED_ON_CREATE: Mapping[str, str] = {CallbackState.SCHEDULED: SCHEDULED_EVENT}
"""A record created in this state announces the event (the chart's initial-state entry)."""
ANNOUNCED_BEFORE: Mapping[str, str] = {"submit": SUBMITTED_EVENT}
"""Announced by the event before it leaves its source state."""
ANNOUNCED_AFTER: Mapping[str, str] = {"submit": QUEUED_EVENT, "reschedule": RESCHEDULED_EVENT}
"""Announced by the event once it is in its target state."""

_INITIAL = "__initial__"
"""The event python-statemachine reports while activating the initial state."""


def _require_completion_reason(reason: str | None = None) -> None:
    """Validator of ``complete``: a COMPLETED record must say why, with a known reason."""
    if reason is None or reason == "":
        raise InvalidReason(f"complete needs a reason, one of {', '.join(sorted(_REASONS))}")
    if reason not in _REASONS:
        raise InvalidReason(
            f"unknown completion reason {reason!r}; expected one of {', '.join(sorted(_REASONS))}"
        )


def _refuse_other_reason(reason: str | None = None) -> None:
    """Validator of ``cancel``: its reason is always CANCELLED."""
    if reason not in (None, CompletionReason.CANCELLED):
        raise InvalidReason(f"cancel always completes with reason CANCELLED, not {reason!r}")


def _completion_reason(event: str, reason: str | None) -> str:
    """The ``_callback_reason`` an event that completes a record leaves on it."""
    return CompletionReason.CANCELLED.value if event == "cancel" else str(reason)


class _Record:
    """The chart's domain model: just what storage keeps (state and reason)."""

    __slots__ = ("reason", "state")

    def __init__(self, state: str | None, reason: str | None) -> None:
        self.state = state
        self.reason = reason


class CallbackChart(StateMachine):
    """The lifecycle chart, the declaration the table is read from; its model is a ``_Record``.

    The chart guards and records the reason; the announcements come from :class:`ChartAnnouncer`.
    """

    scheduled = State(CallbackState.SCHEDULED.value, value=CallbackState.SCHEDULED.value, initial=True)
    queued = State(CallbackState.QUEUED.value, value=CallbackState.QUEUED.value)
    routing = State(CallbackState.ROUTING.value, value=CallbackState.ROUTING.value)
    processing = State(CallbackState.PROCESSING.value, value=CallbackState.PROCESSING.value)
    paused = State(CallbackState.PAUSED.value, value=CallbackState.PAUSED.value)
    completed = State(CallbackState.COMPLETED.value, value=CallbackState.COMPLETED.value, final=True)

    submit = scheduled.to(queued)
    reschedule = scheduled.to.itself()
    route = queued.to(routing)
    process = routing.to(processing) | queued.to(processing)
    pause = queued.to(paused)
    resume = paused.to(queued)
    requeue = routing.to(queued)
    complete = completed.from_.any(validators="require_completion_reason")
    cancel = completed.from_.any(validators="refuse_other_reason")

    require_completion_reason = staticmethod(_require_completion_reason)
    refuse_other_reason = staticmethod(_refuse_other_reason)

    def on_transition(self, event: Any, target: State, reason: str | None = None) -> None:
        """Record why a record completes, before the state is entered, so every hook sees it."""
        if target.final:
            self.model.reason = _completion_reason(str(event), reason)


class ChartAnnouncer:
    """The chart's listener: turns transition hooks into ``_cbe_on_callback_*`` announcements.

    A listener that raises is logged and does not undo or half-apply the change: the chart has
    already moved.
    """

    def __init__(self, listener: LifecycleListener, extra: Mapping[str, Any]) -> None:
        self._listener = listener
        self._extra = dict(extra)

    def emit(self, name: str, from_state: str | None, to_state: str | None, reason: str | None) -> None:
        details: dict[str, Any] = {**self._extra, "from_state": from_state, "to_state": to_state, "reason": reason}
        try:
            self._listener(name, details)
        except Exception:
            log.exception("callback lifecycle listener failed on %s %s", name, details)

    # -- python-statemachine hooks (resolved by name) ------------------------------------------

    def before_transition(self, event: Any, source: State, target: State) -> None:
        name = ANNOUNCED_BEFORE.get(str(event))
        if name is not None:
            self.emit(name, source.value, target.value, None)

    def on_enter_state(self, event: Any, source: State, target: State, model: _Record) -> None:
        if event == _INITIAL:
            name = ANNOUNCED_ON_CREATE.get(target.value)
            if name is not None:
                self.emit(name, None, target.value, None)
            return
        if source.value != target.value:  # reschedule re-enters SCHEDULED: not a state change
            self.emit(STATUS_UPDATED_EVENT, source.value, target.value, model.reason)

    def after_transition(self, event: Any, source: State, target: State, model: _Record) -> None:
        name = ANNOUNCED_AFTER.get(str(event))
        if name is not None:
            self.emit(name, source.value, target.value, None)
        if target.final and model.reason == CompletionReason.CANCELLED:  # completing as CANCELLED is a cancel
            self.emit(CANCELLED_EVENT, source.value, target.value, model.reason)


class Step(NamedTuple):
    """One transition of the chart, ready to execute without building it."""

    source: str
    event: str
    target: str
    validators: tuple[Callable[..., None], ...]
    completes: bool  # enters the final state: sets the reason
    before: str | None  # announced before leaving the source
    changes_state: bool  # announces status_updated on entering the target
    after: str | None  # announced once in the target


def _read_steps() -> dict[tuple[str, str], Step]:
    """The chart's transitions as (state, event) -> :class:`Step`; read once, at import."""
    steps: dict[tuple[str, str], Step] = {}
    for state in CallbackChart.states_map.values():
        for transition in state.transitions:
            target = transition.target
            if target is None or list(transition.cond):
                raise TypeError(f"{state.value}: the lifecycle table knows targets, not guards")
            validators = tuple(getattr(CallbackChart, spec.func) for spec in transition.validators)
            for event in (str(e) for e in transition.events):
                steps.setdefault((state.value, event), Step(
                    state.value, event, target.value, validators, bool(target.final),
                    ANNOUNCED_BEFORE.get(event), state.value != target.value, ANNOUNCED_AFTER.get(event),
                ))
    return steps


STEPS: Mapping[tuple[str, str], Step] = _read_steps()
"""Every legal (state, event) of :class:`CallbackChart`; a pair not in it is illegal."""

_LEGAL_SOURCES: dict[str, tuple[str, ...]] = {}
for _step in STEPS.values():
    _LEGAL_SOURCES[_step.event] = (*_LEGAL_SOURCES.get(_step.event, ()), _step.source)
_EVENT_BETWEEN: dict[tuple[str, str], str] = {}
for _step in STEPS.values():
    if _step.event != "cancel":
        _EVENT_BETWEEN.setdefault((_step.source, _step.target), _step.event)
_TAKES_REASON = frozenset(step.event for step in STEPS.values() if step.completes)

EVENTS: tuple[str, ...] = tuple(_LEGAL_SOURCES)
"""Every lifecycle event name :meth:`Lifecycle.apply` accepts."""

_PARTICIPLES = {
    "submit": "submitted",
    "reschedule": "rescheduled",
    "route": "routed",
    "process": "processed",
    "pause": "paused",
    "resume": "resumed",
    "requeue": "requeued",
    "complete": "completed",
    "cancel": "cancelled",
}


def allowed_events(state: str) -> list[str]:
    """The events legal in ``state``."""
    return [event for event, sources in _LEGAL_SOURCES.items() if state in sources]


def event_between(from_state: str, to_state: str) -> str | None:
    """The event that moves a callback from one state to another (``complete`` for
    COMPLETED), or None when no single legal event does; for flows that report a new state."""
    return _EVENT_BETWEEN.get((from_state, to_state))


def _illegal_message(event: str, state: str) -> str:
    participle = _PARTICIPLES.get(event, event)
    if state == CallbackState.COMPLETED:
        return f"cannot {event} a callback in state COMPLETED; a COMPLETED callback is final"
    sources = _LEGAL_SOURCES[event]
    if event in _TAKES_REASON:
        return f"cannot {event} a callback in state {state}; only callbacks not yet COMPLETED can be {participle}"
    return (
        f"cannot {event} a callback in state {state}; "
        f"only {' or '.join(sources)} callbacks can be {participle}"
    )


def _refuse(event: str, state: str, reason: str | None) -> NoReturn:
    """Why ``event`` with ``reason`` cannot be applied in ``state``, raised in the order the checks
    are made: an unknown event, a reason given to an event that takes none, an illegal state."""
    if event not in _LEGAL_SOURCES:
        raise IllegalTransition(f"unknown callback lifecycle event {event!r}; expected one of {', '.join(EVENTS)}")
    if reason is not None and event not in _TAKES_REASON:
        raise InvalidReason(f"{event} takes no reason (got {reason!r})")
    raise IllegalTransition(_illegal_message(event, state))


def _ignore(_event_name: str, _details: dict[str, Any]) -> None:
    """The listener when none is given."""


def run_on_chart(
    state: str,
    event: str | None,
    listener: LifecycleListener,
    reason: str | None = None,
    observe: Callable[[_Record], None] | None = None,
    **extra: Any,
) -> tuple[str, str | None]:
    """Run a real :class:`CallbackChart` from ``state``: the slow reference the table must equal.

    ``event`` None activates the chart in ``state`` (what :meth:`Lifecycle.created` announces).
    ``observe(record)`` is called as each announcement is made, so a test can see the state the
    chart was in at that moment. Returns (state, reason); refusals raise like
    :meth:`Lifecycle.apply`. Not used by the engine.
    """
    model = _Record(None if event is None else state, None)

    def told(name: str, details: dict[str, Any]) -> None:
        if observe is not None:
            observe(model)
        listener(name, details)

    chart = CallbackChart(model=model, listeners=[ChartAnnouncer(told, extra)], start_value=state)
    if event is not None:
        try:
            chart.send(event, reason=reason)
        except TransitionNotAllowed as err:
            raise IllegalTransition(_illegal_message(event, state)) from err
    assert model.state is not None
    return model.state, model.reason


class Lifecycle:
    """The lifecycle of one stored callback record: its state, its reason, legal changes.

    Restoring (the constructor) fires nothing; :meth:`created` announces a new record;
    :meth:`apply` changes it and notifies ``listener(event_name, details)``, where details carry
    ``from_state``, ``to_state``, ``reason`` (None unless completing or a failure) and the
    ``extra`` keywords given to the call. A reason passed for a non-COMPLETED state is dropped.
    """

    __slots__ = ("_listener", "_reason", "_state")

    def __init__(
        self,
        record_state: str,
        listener: LifecycleListener | None = None,
        reason: str | None = None,
    ) -> None:
        state = str(record_state)
        if state not in _STATES:
            raise ValueError(
                f"_callback_state: unknown state {record_state!r}; expected one of "
                f"{', '.join(s.value for s in CallbackState)}"
            )
        if reason is not None and reason not in _REASONS:
            raise InvalidReason(
                f"_callback_reason: unknown reason {reason!r}; expected one of {', '.join(sorted(_REASONS))}"
            )
        self._state = state
        self._reason = reason if state == CallbackState.COMPLETED else None
        self._listener: LifecycleListener = listener or _ignore

    def __repr__(self) -> str:
        return f"Lifecycle(state={self.state!r}, reason={self.reason!r})"

    @property
    def state(self) -> str:
        """The current ``_callback_state``."""
        return self._state

    @property
    def reason(self) -> str | None:
        """The ``_callback_reason`` once COMPLETED (None before, or if storage had none)."""
        return self._reason

    @property
    def is_final(self) -> bool:
        return self._state == CallbackState.COMPLETED

    @property
    def allowed_events(self) -> list[str]:
        return allowed_events(self._state)

    def _emit(self, name: str, from_state: str | None, to_state: str | None, reason: str | None,
              extra: Mapping[str, Any]) -> None:
        details: dict[str, Any] = {"from_state": from_state, "to_state": to_state, "reason": reason}
        if extra:  # rarely given: the extra keywords come first, the change's own keys win
            details = {**extra, **details}
        try:
            self._listener(name, details)
        except Exception:
            log.exception("callback lifecycle listener failed on %s %s", name, details)

    def created(self, **extra: Any) -> None:
        """Announce a new record: ``_cbe_on_callback_scheduled`` if it starts SCHEDULED.

        The chart's initial-state entry; a record created in another state announces nothing.
        """
        name = ANNOUNCED_ON_CREATE.get(self._state)
        if name is not None:
            self._emit(name, None, self._state, None, extra)

    def apply(self, event: str, reason: str | None = None, **extra: Any) -> str:
        """Fire ``event`` (one of :data:`EVENTS`); returns the new state.

        Raises :class:`IllegalTransition` when the event is not legal now and
        :class:`InvalidReason` for a bad ``reason``; either way nothing changed.
        """
        source = self._state
        step = STEPS.get((source, event))
        if step is None or (reason is not None and not step.completes):
            _refuse(event, source, reason)
        for validate in step.validators:  # refusals happen before anything changes
            validate(reason)
        target = step.target
        if step.before is not None:
            self._emit(step.before, source, target, None, extra)
        # The listener reads this lifecycle's new state while it is told of the change.
        self._state = target
        self._reason = _completion_reason(event, reason) if step.completes else None
        if step.changes_state:
            self._emit(STATUS_UPDATED_EVENT, source, target, self._reason, extra)
        if step.after is not None:
            self._emit(step.after, source, target, None, extra)
        if step.completes and self._reason == CompletionReason.CANCELLED:
            self._emit(CANCELLED_EVENT, source, target, self._reason, extra)
        return target

    # -- one method per event, for readable call sites ----------------------------------------

    def submit(self, **extra: Any) -> str:
        return self.apply("submit", **extra)

    def reschedule(self, **extra: Any) -> str:
        return self.apply("reschedule", **extra)

    def route(self, **extra: Any) -> str:
        return self.apply("route", **extra)

    def process(self, **extra: Any) -> str:
        return self.apply("process", **extra)

    def pause(self, **extra: Any) -> str:
        return self.apply("pause", **extra)

    def resume(self, **extra: Any) -> str:
        return self.apply("resume", **extra)

    def requeue(self, **extra: Any) -> str:
        return self.apply("requeue", **extra)

    def complete(self, reason: str, **extra: Any) -> str:
        return self.apply("complete", reason=reason, **extra)

    def cancel(self, **extra: Any) -> str:
        return self.apply("cancel", **extra)

    # -- notifications that are not state changes ------------------------------------------------

    def resubmitted(self, **extra: Any) -> None:
        """``_cbe_on_callback_resubmitted``: the callback was handed to a flow again."""
        self._emit(RESUBMITTED_EVENT, self._state, self._state, None, extra)

    def submit_failed(self, reason: str, **extra: Any) -> None:
        """``_cbe_on_callback_submit_failed``: starting its flow failed (reason: why)."""
        self._emit(SUBMIT_FAILED_EVENT, self._state, self._state, reason, extra)

    def processing_failed(self, reason: str, **extra: Any) -> None:
        """``_cbe_on_callback_processing_failed``: its flow failed (reason: why)."""
        self._emit(PROCESSING_FAILED_EVENT, self._state, self._state, reason, extra)
