"""The words of a callback record: its ``_callback_state`` and its ``_callback_reason``.

One place for them, so a misspelt state is an AttributeError at import rather than a record that
silently never matches. They are ``StrEnum`` members: each equals its string, so stored records,
the REST API and flows keep reading and writing the plain GMS strings.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FLOW_STATES", "OPEN_STATES", "CallbackState", "CompletionReason"]


class CallbackState(StrEnum):
    """GMS ``_callback_state`` values."""

    SCHEDULED = "SCHEDULED"  # waits for its desired time; no flow session yet
    QUEUED = "QUEUED"
    ROUTING = "ROUTING"  # customer reached, waiting for an agent
    PROCESSING = "PROCESSING"  # with an agent
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"  # final, with a CompletionReason


class CompletionReason(StrEnum):
    """``_callback_reason`` values of a COMPLETED callback (PURGED is ours)."""

    AGENT_CONNECTED = "AGENT_CONNECTED"
    CANCELLED = "CANCELLED"
    FAIL_TIMEOUT_TTL = "FAIL_TIMEOUT_TTL"
    FAIL_CALL_TO_CUSTOMER = "FAIL_CALL_TO_CUSTOMER"
    FAIL_TARGET_NOT_FOUND = "FAIL_TARGET_NOT_FOUND"
    FAIL_USER_NO_CONFIRM = "FAIL_USER_NO_CONFIRM"
    FAIL_ERROR = "FAIL_ERROR"
    PURGED = "PURGED"


FLOW_STATES: tuple[CallbackState, ...] = tuple(
    state for state in CallbackState if state not in (CallbackState.SCHEDULED, CallbackState.COMPLETED)
)
"""The states a running flow may report (``<cb:update state=...>``): the service alone schedules,
and a flow completes through ``<cb:complete>`` with a reason."""

OPEN_STATES: frozenset[CallbackState] = frozenset(FLOW_STATES)
"""States whose callback has a flow session running (neither SCHEDULED nor COMPLETED)."""
