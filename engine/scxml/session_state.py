"""A session's state as a value: what ``Session.to_state`` gives and ``Session.from_state`` takes.

Everything is plain: state ids instead of nodes, events and send requests as they are, the
author's variables as live values. Turning it into JSON (and back) is ``snapshot.py``'s job;
restoring it is the session's own, so nothing outside ``Session`` touches its insides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .events import Event
from .executable import SendRequest


@dataclass(slots=True)
class InvocationState:
    """One invocation of a stored session: which ``<invoke>`` (state id and its index there),
    the child session's id for an SCXML child, else what its invoker saved."""

    invokeid: str
    state: str
    index: int
    child: str | None
    handle: Any
    finished: bool


@dataclass(slots=True)
class SessionState:
    """A session between macrosteps (or between two microsteps of a macrostep cut by fairness)."""

    status: str
    configuration: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    # Variables whose values could not be stored: taken again from the top-level scripts.
    lost: list[str] = field(default_factory=list)
    history: dict[str, list[str]] = field(default_factory=dict)
    internal: list[Event] = field(default_factory=list)
    external: list[Event] = field(default_factory=list)
    # Delayed sends not yet sent, each with its absolute due time (``SendRequest.due``).
    pending: list[SendRequest] = field(default_factory=list)
    invocations: list[InvocationState] = field(default_factory=list)
    late_done: list[str] = field(default_factory=list)
    sendseq: int = 0
    parent: str | None = None
    invokeid: str | None = None
    final_ids: list[str] = field(default_factory=list)
    done_data: Any = None
    error: str | None = None
    cancel_requested: bool = False
    # More of ``data``, from ``to_state(for_snapshot=True)`` only: the JSON text of an object
    # holding the variables the datamodel keeps as plain JSON text already
    # (``DataModel.stored_variables``), for ``snapshot.snapshot_json`` to write as it is.
    data_text: str | None = None
