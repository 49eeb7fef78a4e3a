"""The SCXML Event I/O Processor (W3C D.1): events between sessions of this engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import CommunicationError, ExecutionError
from .events import Event
from .executable import SCXML_PROCESSOR, SendRequest

if TYPE_CHECKING:
    from .ports import AddressedSession, ProcessorHost


class ScxmlProcessor:
    """Targets: none (own external queue), ``#_internal``, ``#_parent``, ``#_scxml_<id>``,
    ``#_<invokeid>``."""

    type = SCXML_PROCESSOR
    effect_kind = None  # its events stay inside the engine: nothing for the host to record

    def __init__(self, host: ProcessorHost):
        self.host = host

    async def start(self) -> None:
        """Nothing to listen on: its events go from session to session through the host."""

    async def close(self) -> None:
        """Nothing to release (see ``start``)."""

    def location(self, session: AddressedSession) -> str:
        return "#_scxml_" + session.id

    def check(self, session: AddressedSession, req: SendRequest) -> None:
        """Refuse a malformed target when the send executes, even for a delayed send."""
        target = req.target
        if target is not None and not target.startswith("#_"):
            raise ExecutionError(f"line {req.line}: invalid target {target!r} for the SCXML processor")
        if req.name is None:
            raise ExecutionError(f"line {req.line}: the SCXML processor needs an event name")

    def send(self, session: AddressedSession, req: SendRequest) -> None:
        target = req.target
        event = Event(
            req.name, req.data, type="external",  # type: ignore[arg-type]
            sendid=req.sendid if req.explicit_id else None,
            origin="#_scxml_" + session.id, origintype=SCXML_PROCESSOR,
        )
        if target is None:
            session.deliver(event)
        elif target == "#_internal":
            event.type = "internal"
            event.origin = event.origintype = None
            session.post_internal(event)
        elif target == "#_parent":
            parent = session.parent
            if session.cancel_requested:
                return  # a cancelled invocation sends nothing more (W3C 6.4.4)
            if parent is None:
                raise CommunicationError("#_parent: this session was not invoked")
            event.invokeid = session.invokeid
            self.host.route_event(session, parent, event)
        elif target.startswith("#_scxml_"):
            if target[8:] != session.id:
                # Another session is outside this flow: the engine's own events (a callback's
                # cb.cancel, dial.result...) may not come from it, as from any outside source.
                reason = self.host.refuses_external(req.name)  # type: ignore[arg-type]
                if reason is not None:
                    raise CommunicationError(f"line {req.line}: {target}: {reason}")
            other = self.host.sessions.get(target[8:])
            if other is None or not other.is_running:
                if self.host.hand_over(session, target[8:], event):
                    return  # a session this host does not run (another node's, in a cluster)
                raise CommunicationError(f"no running session {target[8:]!r}")
            self.host.route_event(session, other, event)
        else:
            invocation = session.invocation(target[2:])
            if invocation is None:
                raise CommunicationError(f"no active invocation {target[2:]!r}")
            invocation.forward(event)
