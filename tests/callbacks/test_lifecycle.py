"""The callback lifecycle chart: every legal and illegal change, and what each one announces.

The callback service updates ``_callback_state`` only from these notifications, so a missing
or misordered one is a wrong record or a wrong status notification to the customer.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from statemachine import StateMachine

from engine.callbacks.lifecycle import (
    EVENTS,
    CallbackChart,
    CallbackState,
    CompletionReason,
    IllegalTransition,
    InvalidReason,
    Lifecycle,
    LifecycleError,
    allowed_events,
    event_between,
)

STATES = [state.value for state in CallbackState]
REASONS = [reason.value for reason in CompletionReason]
NON_FINAL = [state for state in STATES if state != "COMPLETED"]

SCHEDULED = "_cbe_on_callback_scheduled"
RESCHEDULED = "_cbe_on_callback_rescheduled"
CANCELLED = "_cbe_on_callback_cancelled"
STATUS = "_cbe_on_callback_status_updated"
SUBMITTED = "_cbe_on_callback_submitted"
QUEUED = "_cbe_on_callback_queued"

Note = tuple[str, str | None, str | None, str | None]
"""(event name, from_state, to_state, reason) of one notification."""


class Recorder:
    """A listener that keeps what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event_name: str, details: dict[str, Any]) -> None:
        self.calls.append((event_name, dict(details)))

    @property
    def notes(self) -> list[Note]:
        return [(name, d["from_state"], d["to_state"], d["reason"]) for name, d in self.calls]


def _status(source: str, target: str, reason: str | None = None) -> Note:
    return (STATUS, source, target, reason)


# (state, event, reason) -> (new state, notifications in order). Everything else is illegal.
LEGAL: dict[tuple[str, str, str | None], tuple[str, list[Note]]] = {
    ("SCHEDULED", "submit", None): (
        "QUEUED",
        [
            (SUBMITTED, "SCHEDULED", "QUEUED", None),
            _status("SCHEDULED", "QUEUED"),
            (QUEUED, "SCHEDULED", "QUEUED", None),
        ],
    ),
    ("SCHEDULED", "reschedule", None): ("SCHEDULED", [(RESCHEDULED, "SCHEDULED", "SCHEDULED", None)]),
    ("QUEUED", "route", None): ("ROUTING", [_status("QUEUED", "ROUTING")]),
    ("QUEUED", "process", None): ("PROCESSING", [_status("QUEUED", "PROCESSING")]),
    ("ROUTING", "process", None): ("PROCESSING", [_status("ROUTING", "PROCESSING")]),
    ("QUEUED", "pause", None): ("PAUSED", [_status("QUEUED", "PAUSED")]),
    ("PAUSED", "resume", None): ("QUEUED", [_status("PAUSED", "QUEUED")]),
    ("ROUTING", "requeue", None): ("QUEUED", [_status("ROUTING", "QUEUED")]),
}
for _state in NON_FINAL:
    LEGAL[(_state, "cancel", None)] = (
        "COMPLETED",
        [_status(_state, "COMPLETED", "CANCELLED"), (CANCELLED, _state, "COMPLETED", "CANCELLED")],
    )
    for _reason in REASONS:
        notes = [_status(_state, "COMPLETED", _reason)]
        if _reason == "CANCELLED":  # completing as CANCELLED is a cancellation too
            notes.append((CANCELLED, _state, "COMPLETED", "CANCELLED"))
        LEGAL[(_state, "complete", _reason)] = ("COMPLETED", notes)

ILLEGAL = [
    (state, event)
    for state, event in itertools.product(STATES, EVENTS)
    if not any(key[0] == state and key[1] == event for key in LEGAL)
]


def test_the_chart_is_a_python_statemachine_chart_with_the_gms_states() -> None:
    assert issubclass(CallbackChart, StateMachine)
    assert sorted(CallbackChart.states_map) == sorted(STATES)
    assert [s.value for s in CallbackChart.final_states] == ["COMPLETED"]
    assert set(EVENTS) == {"submit", "reschedule", "route", "process", "pause", "resume", "complete", "cancel",
                           "requeue"}


def test_the_tables_cover_every_state_event_pair() -> None:
    """Guards the test itself: each (state, event) is either legal or listed as illegal."""
    legal_pairs = {(key[0], key[1]) for key in LEGAL}
    assert legal_pairs.isdisjoint(ILLEGAL)
    assert len(legal_pairs) + len(ILLEGAL) == len(STATES) * len(EVENTS)


@pytest.mark.parametrize(("state", "event", "reason"), list(LEGAL), ids=lambda v: str(v))
def test_legal_change_moves_and_notifies(state: str, event: str, reason: str | None) -> None:
    new_state, expected = LEGAL[(state, event, reason)]
    recorder = Recorder()
    lifecycle = Lifecycle(state, recorder)

    assert lifecycle.apply(event, reason=reason) == new_state

    assert lifecycle.state == new_state
    assert lifecycle.reason == (reason or "CANCELLED" if new_state == "COMPLETED" else None)
    assert recorder.notes == expected


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=lambda v: str(v))
def test_illegal_change_raises_and_changes_nothing(state: str, event: str) -> None:
    recorder = Recorder()
    restored_reason = "FAIL_ERROR" if state == "COMPLETED" else None
    lifecycle = Lifecycle(state, recorder, reason=restored_reason)
    reason = "AGENT_CONNECTED" if event == "complete" else None

    with pytest.raises(IllegalTransition, match=rf"^cannot {event} a callback in state {state}; "):
        lifecycle.apply(event, reason=reason)

    assert lifecycle.state == state
    assert lifecycle.reason == restored_reason
    assert recorder.calls == []


@pytest.mark.parametrize(
    ("state", "event", "message"),
    [
        ("QUEUED", "reschedule", "cannot reschedule a callback in state QUEUED; "
                                 "only SCHEDULED callbacks can be rescheduled"),
        ("PAUSED", "process", "cannot process a callback in state PAUSED; "
                              "only QUEUED or ROUTING callbacks can be processed"),
        ("SCHEDULED", "resume", "cannot resume a callback in state SCHEDULED; only PAUSED callbacks can be resumed"),
        ("COMPLETED", "cancel", "cannot cancel a callback in state COMPLETED; a COMPLETED callback is final"),
    ],
)
def test_illegal_change_says_what_would_be_legal(state: str, event: str, message: str) -> None:
    with pytest.raises(IllegalTransition) as caught:
        Lifecycle(state).apply(event)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)  # the REST layer answers 400 for ValueError


def test_named_methods_walk_a_full_callback() -> None:
    recorder = Recorder()
    lifecycle = Lifecycle("SCHEDULED", recorder)
    lifecycle.created()
    lifecycle.reschedule()
    lifecycle.submit()
    lifecycle.route()
    lifecycle.requeue()
    lifecycle.pause()
    lifecycle.resume()
    lifecycle.route()
    lifecycle.process()
    lifecycle.complete("AGENT_CONNECTED")

    assert lifecycle.state == "COMPLETED"
    assert lifecycle.reason == "AGENT_CONNECTED"
    assert lifecycle.is_final
    assert [name for name, _ in recorder.calls] == [
        SCHEDULED, RESCHEDULED, SUBMITTED, STATUS, QUEUED, STATUS, STATUS, STATUS, STATUS, STATUS, STATUS, STATUS,
    ]
    assert [d["to_state"] for name, d in recorder.calls if name == STATUS] == [
        "QUEUED", "ROUTING", "QUEUED", "PAUSED", "QUEUED", "ROUTING", "PROCESSING", "COMPLETED",
    ]


@pytest.mark.parametrize("state", STATES)
def test_restoring_in_any_state_notifies_nothing(state: str) -> None:
    recorder = Recorder()
    reason = "PURGED" if state == "COMPLETED" else None
    lifecycle = Lifecycle(state, recorder, reason=reason)
    assert lifecycle.state == state
    assert lifecycle.reason == reason
    assert lifecycle.allowed_events == allowed_events(state)
    assert recorder.calls == []


def test_restored_completed_without_a_stored_reason_is_still_final() -> None:
    lifecycle = Lifecycle("COMPLETED")
    assert lifecycle.reason is None
    assert lifecycle.allowed_events == []
    with pytest.raises(IllegalTransition):
        lifecycle.cancel()


def test_a_reason_stored_with_a_non_completed_state_is_dropped() -> None:
    assert Lifecycle("QUEUED", reason="FAIL_ERROR").reason is None


def test_restoring_an_unknown_state_or_reason_is_refused() -> None:
    with pytest.raises(ValueError, match=r"_callback_state: unknown state 'WAITING'"):
        Lifecycle("WAITING")
    with pytest.raises(InvalidReason, match=r"_callback_reason: unknown reason 'OOPS'"):
        Lifecycle("COMPLETED", reason="OOPS")


def test_created_announces_a_scheduled_callback() -> None:
    recorder = Recorder()
    lifecycle = Lifecycle("SCHEDULED", recorder)
    lifecycle.created(desired_time="2026-05-04T09:00:00.000Z")
    assert recorder.calls == [
        (SCHEDULED, {"from_state": None, "to_state": "SCHEDULED", "reason": None,
                     "desired_time": "2026-05-04T09:00:00.000Z"}),
    ]
    assert lifecycle.state == "SCHEDULED"


@pytest.mark.parametrize("state", NON_FINAL[1:])
def test_created_in_another_state_announces_nothing(state: str) -> None:
    recorder = Recorder()
    lifecycle = Lifecycle(state, recorder)
    lifecycle.created()
    assert recorder.calls == []
    assert lifecycle.state == state


@pytest.mark.parametrize("state", NON_FINAL)
@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (None, r"complete needs a reason, one of "),
        ("", r"complete needs a reason, one of "),
        ("DONE", r"unknown completion reason 'DONE'; expected one of "),
        ("cancelled", r"unknown completion reason 'cancelled'"),
    ],
)
def test_complete_requires_a_known_reason(state: str, reason: str | None, message: str) -> None:
    recorder = Recorder()
    lifecycle = Lifecycle(state, recorder)
    with pytest.raises(InvalidReason, match=message):
        lifecycle.apply("complete", reason=reason)
    assert lifecycle.state == state
    assert lifecycle.reason is None
    assert recorder.calls == []


def test_cancel_accepts_only_its_own_reason() -> None:
    lifecycle = Lifecycle("QUEUED")
    with pytest.raises(InvalidReason, match="cancel always completes with reason CANCELLED"):
        lifecycle.apply("cancel", reason="FAIL_ERROR")
    assert lifecycle.state == "QUEUED"
    assert lifecycle.apply("cancel", reason="CANCELLED") == "COMPLETED"
    assert lifecycle.reason == "CANCELLED"


@pytest.mark.parametrize("event", ["submit", "reschedule", "route"])
def test_events_other_than_completion_take_no_reason(event: str) -> None:
    lifecycle = Lifecycle("SCHEDULED" if event != "route" else "QUEUED")
    with pytest.raises(InvalidReason, match=f"{event} takes no reason"):
        lifecycle.apply(event, reason="FAIL_ERROR")


def test_unknown_event_is_refused() -> None:
    with pytest.raises(IllegalTransition, match=r"unknown callback lifecycle event 'dial'"):
        Lifecycle("QUEUED").apply("dial")


def test_all_lifecycle_errors_are_value_errors() -> None:
    assert issubclass(IllegalTransition, LifecycleError)
    assert issubclass(InvalidReason, LifecycleError)
    assert issubclass(LifecycleError, ValueError)


@pytest.mark.parametrize(
    ("method", "name", "reason"),
    [
        ("resubmitted", "_cbe_on_callback_resubmitted", None),
        ("submit_failed", "_cbe_on_callback_submit_failed", "flow 'callback' not found"),
        ("processing_failed", "_cbe_on_callback_processing_failed", "the flow crashed"),
    ],
)
def test_notify_only_events_change_nothing(method: str, name: str, reason: str | None) -> None:
    recorder = Recorder()
    lifecycle = Lifecycle("QUEUED", recorder)
    args = () if reason is None else (reason,)
    getattr(lifecycle, method)(*args, attempt=2)
    assert recorder.calls == [
        (name, {"from_state": "QUEUED", "to_state": "QUEUED", "reason": reason, "attempt": 2}),
    ]
    assert lifecycle.state == "QUEUED"


def test_extra_keywords_reach_every_notification_of_the_change() -> None:
    recorder = Recorder()
    Lifecycle("SCHEDULED", recorder).submit(session_id="s-1")
    assert [d["session_id"] for _, d in recorder.calls] == ["s-1", "s-1", "s-1"]


def test_extra_keywords_cannot_forge_the_states() -> None:
    recorder = Recorder()
    Lifecycle("QUEUED", recorder).apply("route", to_state="COMPLETED")
    assert recorder.notes == [_status("QUEUED", "ROUTING")]


def test_a_failing_listener_does_not_undo_or_break_the_change(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event_name: str, details: dict[str, Any]) -> None:
        raise RuntimeError("storage down")

    lifecycle = Lifecycle("SCHEDULED", broken)
    assert lifecycle.submit() == "QUEUED"
    assert lifecycle.state == "QUEUED"
    assert "storage down" in caplog.text


def test_listener_sees_the_new_state_on_the_lifecycle_when_told() -> None:
    """The service may read the lifecycle back from inside its listener."""
    seen: list[str] = []
    lifecycle: Lifecycle

    def listener(event_name: str, details: dict[str, Any]) -> None:
        if event_name == STATUS:
            seen.append(lifecycle.state)

    lifecycle = Lifecycle("QUEUED", listener)
    lifecycle.pause()
    assert seen == ["PAUSED"]


def test_without_listener_changes_still_apply() -> None:
    lifecycle = Lifecycle("SCHEDULED")
    lifecycle.created()
    assert lifecycle.submit() == "QUEUED"


@pytest.mark.parametrize("state", STATES)
def test_allowed_events_match_the_legal_table(state: str) -> None:
    expected = {key[1] for key in LEGAL if key[0] == state}
    assert set(allowed_events(state)) == expected


@pytest.mark.parametrize(
    ("source", "target", "event"),
    [
        ("SCHEDULED", "QUEUED", "submit"),
        ("SCHEDULED", "SCHEDULED", "reschedule"),
        ("QUEUED", "ROUTING", "route"),
        ("ROUTING", "PROCESSING", "process"),
        ("QUEUED", "PROCESSING", "process"),
        ("ROUTING", "QUEUED", "requeue"),
        ("QUEUED", "PAUSED", "pause"),
        ("PAUSED", "QUEUED", "resume"),
        ("PROCESSING", "COMPLETED", "complete"),
        ("PROCESSING", "QUEUED", None),
        ("COMPLETED", "QUEUED", None),
    ],
)
def test_event_between_states(source: str, target: str, event: str | None) -> None:
    assert event_between(source, target) == event


def test_lifecycle_holds_no_chart_between_changes() -> None:
    """Thousands of records are loaded: each keeps a state string, not a 70 KB chart."""
    lifecycle = Lifecycle("QUEUED")
    lifecycle.route()
    assert not hasattr(lifecycle, "__dict__")
    assert not any(isinstance(getattr(lifecycle, slot), CallbackChart) for slot in Lifecycle.__slots__)
