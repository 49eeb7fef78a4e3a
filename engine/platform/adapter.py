"""The contact-center platform as flows and the rest of the engine see it (SPEC 5).

Flows talk to a platform only through events: a flow sends a *request* (``<send type="platform"
event="dial">``), the engine hands it to ``Platform.handle`` after committing the macrostep, and the
answer comes back later as an event delivered to the session through the ``deliver`` callable its
session host attached. Nothing in a flow depends on the simulator, so a real telephony adapter
can replace it by implementing this protocol.

Requests and the events they produce (every event's data carries ``request_id`` when the request
did):

==================  ===================================================================================
request             events
==================  ===================================================================================
``vixn.create``     ``vixn.created`` {vixn_id, queue}: a virtual interaction joins the queue
``vixn.cancel``     ``vixn.cancelled`` {vixn_id}: it leaves the queue, its reserved agent is released
``target.find``     ``target.found`` {vixn_id, queue, agent_id, agent_extension, target}: an agent is
                    reserved for the interaction once it is the first seeker and an agent is free
``agent.release``   ``agent.released`` {agent_id}: a reserved agent goes back to work unused
``dial``            ``dial.result`` {number, attempt, result, code}
``treatment.play``  ``treatment.done`` {name, seconds}
``route``           ``route.done`` {agent_id, agent_extension}, then ``call.ended`` {agent_id,
                    handle_seconds}
``callin.register`` ``callin.registered`` {access_number, access_code, expires}, then
                    ``callin.arrived`` {number, access_code} when the customer calls in
anything wrong      ``platform.error`` {request, reason}
==================  ===================================================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Deliver = Callable[[str, str, dict[str, Any]], bool | None]
"""``deliver(session_id, event_name, data)``: how a platform raises an event in a session; a host's
deliver answers whether the session runs there (a cluster node hands the others over)."""

QueueListener = Callable[[str], None]
"""``listener(queue)``: told that a queue changed, so EWT can be re-evaluated without polling."""

# Dial outcomes and their numeric codes (``dial.result`` carries both).
ANSWER = "answer"
BUSY = "busy"
NO_ANSWER = "no_answer"
ANSWERING_MACHINE = "answering_machine"
ERROR = "error"
OUTCOME_CODES: dict[str, int] = {ANSWER: 0, BUSY: 1, NO_ANSWER: 2, ANSWERING_MACHINE: 3, ERROR: 4}
OUTCOMES: tuple[str, ...] = tuple(OUTCOME_CODES)

REQUESTS: tuple[str, ...] = (
    "vixn.create", "vixn.cancel", "target.find", "agent.release", "dial", "treatment.play", "route",
    "callin.register",
)

# The namespaces of the events a platform raises in flows (``dial.result``, ``target.found``...).
# Only the platform may raise them: from a client they would forge a call's outcome.
EVENT_PREFIXES: tuple[str, ...] = (
    "platform.", "vixn.", "target.", "dial.", "treatment.", "route.", "call.", "callin.", "agent.",
)

UNKNOWN_EWT = -1.0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What EWT and the admin API need to know about one virtual queue right now."""

    queue: str
    waiting: int
    agents_staffed: int
    agents_busy: int
    agents_free: int
    avg_handle_seconds: float | None  # None until an interaction has been handled
    ewt_seconds: float  # for a new arrival; -1 when unknown (no agent staffed)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a session's waiting interaction stands in its queue."""

    queue: str
    position: int  # 1-based
    total_waiting: int
    ewt_seconds: float  # -1 when unknown


@runtime_checkable
class Platform(Protocol):
    """Queues, agents, target selection, an outbound dialer and call-in matching."""

    #: Whether the platform's requests and events outlive this process. When they do not (the
    #: embedded simulator: its queues, agents and calls end with the process; after a restart the
    #: flows get ``platform.restarted``), the engine stores neither and waits for no commit: a
    #: request goes out as the flow sends it (a crash takes the platform's memory of it along),
    #: and an event goes to its session without an inbox row.
    durable: bool

    def attach(self, deliver: Deliver) -> Callable[[], None]:
        """Raise the platform's events in sessions through ``deliver`` (each session host attaches
        when it builds its processors; events for a session a host does not run are ignored by
        that host). Returns the callable that detaches it (when the host closes)."""
        ...

    def handle(self, session_id: str, request: str, data: dict[str, Any]) -> Awaitable[None] | None:
        """Accept a request from a flow; never raises for bad input, answers with events later. A
        durable platform returns an awaitable done once the request is safely with it."""

    def queue_stats(self, queue: str) -> QueueStats:
        """Statistics of one queue; raises KeyError for an unknown queue."""
        ...

    def position(self, session_id: str) -> Position | None:
        """The session's waiting interaction, or None when it has none waiting."""
        ...

    def call_in(self, number: str, access_code: str) -> str | None:
        """A customer called the access number and keyed a code: the matched session id or None."""
        ...

    def drop(self, session_id: str) -> None:
        """Forget a session: leave its queues, release its agents, cancel its timers."""

    def add_listener(self, fn: QueueListener) -> None:
        """Call ``fn(queue)`` whenever a queue changes."""

    def health(self) -> tuple[bool, str]:
        """Whether the platform can take requests now, and a one-line reason (readiness check)."""
        ...
