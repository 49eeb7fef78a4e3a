"""The lifecycle table equals the python-statemachine chart it is read from.

:class:`Lifecycle` executes a table so that no chart is built per record change; these tests
drive a real :class:`CallbackChart` for every state x event (x reason) and require the same new
state and reason, the same announcements in the same order with the same details, the state the
listener could read at each announcement, and the same refusals with the same messages.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from engine.callbacks.lifecycle import (
    EVENTS,
    STEPS,
    CallbackChart,
    CallbackState,
    CompletionReason,
    Lifecycle,
    LifecycleError,
    run_on_chart,
)

STATES = [state.value for state in CallbackState]
# Events that take a reason are tried with none, an empty one, an unknown one and every known one.
REASON_EVENTS = {"complete", "cancel"}
TRIED_REASONS = [None, "", "DONE", *(reason.value for reason in CompletionReason)]

Seen = tuple[str, dict[str, Any], str | None, str | None]
"""(event name, details, state and reason the record had while it was told)."""


def _cases() -> list[tuple[str, str, str | None]]:
    return [
        (state, event, reason)
        for state, event in itertools.product(STATES, EVENTS)
        for reason in (TRIED_REASONS if event in REASON_EVENTS else [None])
    ]


def _on_table(state: str, event: str, reason: str | None) -> tuple[Any, list[Seen]]:
    seen: list[Seen] = []
    lifecycle: Lifecycle

    def listener(name: str, details: dict[str, Any]) -> None:
        seen.append((name, details, lifecycle.state, lifecycle.reason))

    lifecycle = Lifecycle(state, listener)
    try:
        lifecycle.apply(event, reason=reason, session_id="s-1")
    except LifecycleError as err:
        return (type(err), str(err), lifecycle.state, lifecycle.reason), seen
    return (lifecycle.state, lifecycle.reason), seen


def _on_chart(state: str, event: str, reason: str | None) -> tuple[Any, list[Seen]]:
    seen: list[Seen] = []
    moment: list[tuple[str | None, str | None]] = []

    def listener(name: str, details: dict[str, Any]) -> None:
        record_state, record_reason = moment.pop()
        seen.append((name, details, record_state, record_reason))

    def observe(record: Any) -> None:
        moment.append((record.state, record.reason))

    try:
        outcome: Any = run_on_chart(state, event, listener, reason=reason, observe=observe, session_id="s-1")
    except LifecycleError as err:
        return (type(err), str(err), state, None), seen
    return outcome, seen


@pytest.mark.parametrize(("state", "event", "reason"), _cases(), ids=lambda v: repr(v))
def test_table_equals_chart(state: str, event: str, reason: str | None) -> None:
    assert _on_table(state, event, reason) == _on_chart(state, event, reason)


@pytest.mark.parametrize("state", STATES)
def test_created_equals_the_charts_initial_entry(state: str) -> None:
    table: list[tuple[str, dict[str, Any]]] = []
    chart: list[tuple[str, dict[str, Any]]] = []
    Lifecycle(state, lambda name, details: table.append((name, details))).created(desired_time="t")
    assert run_on_chart(state, None, lambda name, details: chart.append((name, details)), desired_time="t") == (
        state, None)
    assert table == chart


def test_the_comparison_covers_legal_and_illegal_pairs() -> None:
    """Guards the test itself: both outcomes occur, and every legal pair is a step of the table."""
    legal = {(state, event) for state, event, reason in _cases()
             if not isinstance(_on_chart(state, event, reason)[0][0], type)}
    illegal = {(state, event) for state, event in itertools.product(STATES, EVENTS)} - legal
    assert legal == set(STEPS)
    assert len(legal) == 18 and len(illegal) == len(STATES) * len(EVENTS) - 18
    assert ("COMPLETED", "cancel") in illegal and ("ROUTING", "requeue") in legal


def test_changes_build_no_chart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the table: a record change never constructs a python-statemachine chart."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a chart was built")

    monkeypatch.setattr(CallbackChart, "__init__", refuse)
    lifecycle = Lifecycle("SCHEDULED")
    lifecycle.created()
    for event in ("reschedule", "submit", "route", "requeue", "pause", "resume", "process"):
        lifecycle.apply(event)
    assert lifecycle.complete("AGENT_CONNECTED") == "COMPLETED"
