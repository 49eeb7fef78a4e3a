"""The platform Event I/O Processor: how a flow's ``<send type="platform">`` reaches the platform.

A flow writes::

    <send type="platform" event="dial">
        <param name="number" expr="customer_number"/>
        <param name="attempt" expr="attempt"/>
    </send>

and later receives ``dial.result`` as an external event. The event name is the request, the
``<param>``/``namelist`` values are its data. Like Basic HTTP, a send is an *effect*: the host
persists it with the macrostep (``host.emit``) and calls ``perform`` after the commit, so a crash
never loses or invents a platform request.

The composition root registers the processor with the platform it serves
(``register(registry, platform)``); each host's processor, when the host builds it, attaches the
host to the platform as where its events go (``Platform.attach``). ``request_id`` defaults to the
send's id, so a flow can match answers with ``<send idlocation="...">`` without passing an id of
its own.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from engine.scxml.errors import ExecutionError
from engine.scxml.events import AttrDict, Event
from engine.scxml.executable import SendRequest

from .adapter import Deliver, Platform

if TYPE_CHECKING:
    from engine.scxml.host import SessionHost
    from engine.scxml.registry import Registry
    from engine.scxml.session import Session

PLATFORM_PROCESSOR = "urn:callback-engine:platform"
PLATFORM_ALIAS = "platform"
EFFECT_KIND = "platform"
log = logging.getLogger("engine.platform")


class PlatformProcessor:
    """One per host; stateless apart from the host and the platform it joins."""

    type = PLATFORM_PROCESSOR
    effect_kind = EFFECT_KIND

    def __init__(self, host: SessionHost, platform: Platform | None = None):
        self.host = host
        self.platform = platform
        self.durable = platform.durable if platform is not None else True
        self._detach = platform.attach(host_deliverer(host, durable=platform.durable)) if platform else None

    async def start(self) -> None:
        """Nothing to listen on: the platform delivers its events through the host."""

    async def close(self) -> None:
        """The host closes: its sessions take no more platform events (the platform itself
        belongs to the composition root, which closes it)."""
        if self._detach is not None:
            self._detach()
            self._detach = None

    def location(self, session: Session) -> str | None:
        """Nothing outside can address a session through the platform, so no ``_ioprocessors`` entry."""
        return None

    def check(self, session: Session, req: SendRequest) -> None:
        if not req.name:
            raise ExecutionError(f"line {req.line}: a platform send needs an event name (the request)")
        if req.data is not None and not isinstance(req.data, dict):
            raise ExecutionError(f"line {req.line}: platform requests take <param> or namelist data, "
                                 f"not {type(req.data).__name__} content")

    def send(self, session: Session, req: SendRequest) -> None:
        data = dict(req.data) if req.data else {}
        self.host.emit(session, EFFECT_KIND, {"request": req.name, "data": data, "sendid": req.sendid},
                       durable=self.durable)

    def perform(self, session_id: str, payload: dict[str, Any]) -> Any:
        """Hand one request to the platform (the host calls this, after persisting it). A durable
        platform's answer is awaitable: done once it has the request, so the host keeps the outbox
        row until then."""
        platform = self.platform
        request = payload.get("request")
        if platform is None:
            log.error("platform request %r of session %s dropped: no platform is configured", request, session_id)
            self._fail(session_id, payload, "no contact-center platform is configured")
            return None
        data = dict(payload.get("data") or {})
        if payload.get("sendid") is not None:
            data.setdefault("request_id", payload["sendid"])
        try:
            return platform.handle(session_id, request, data)
        except Exception as e:
            log.exception("platform request %r of session %s failed", request, session_id)
            self._fail(session_id, payload, f"platform request {request!r} failed: {e}")
            return None

    def _fail(self, session_id: str, payload: dict[str, Any], message: str) -> None:
        session = self.host.sessions.get(session_id)
        if session is not None and session.is_running:
            session.post_error("error.communication", message, payload.get("sendid"))


def register(registry: Registry, platform: Platform | None = None) -> None:
    """Make ``type="platform"`` (and the full URI) available to documents compiled with
    ``registry``; sends reach ``platform`` (without one they fail with error.communication)."""
    registry.register_processor(PLATFORM_PROCESSOR, partial(PlatformProcessor, platform=platform), PLATFORM_ALIAS)


def send_request(session: Session, request: str, data: dict[str, Any], request_id: str, line: int = 0) -> None:
    """A platform request a flow made other than by ``<send>`` (an ECMAScript flow's
    ``_genesys.queue``), sent as ``<send type="platform" event="{request}">`` is: through the
    session's dispatch (the send budget, this processor's checks, stored with the macrostep and
    performed after its commit), with ``request_id`` as its send id, so the answer carries it."""
    session.dispatch(SendRequest(request, None, PLATFORM_PROCESSOR, request_id, dict(data), 0.0, line))


def event_data(value: Any) -> Any:
    """Dicts become ``AttrDict`` all the way down, so flows can write ``_event.data.target.dn``."""
    if isinstance(value, dict):
        return AttrDict({k: v if type(v) in _LEAVES else event_data(v) for k, v in value.items()})
    if isinstance(value, list):
        return [v if type(v) in _LEAVES else event_data(v) for v in value]
    return value


_LEAVES = frozenset({str, int, float, bool, type(None)})  # most values: no call to look inside


def platform_event(name: str, data: dict[str, Any]) -> Event:
    """A platform event as its session takes it in (an external event from this processor)."""
    return Event(name, event_data(data), type="external", origintype=PLATFORM_PROCESSOR)


def host_deliverer(host: SessionHost, durable: bool = True) -> Deliver:
    """A ``deliver`` for a platform: raise its events in the host's sessions (through
    ``route_event``, the seam a persisting host overrides, when the platform is durable; straight
    into the session when it is not: nothing of it would survive a restart to redo them against).
    Answers whether the session runs here: a cluster's platform adapter hands the others over to
    their holder; an embedded platform ignores the answer, as it skips ended sessions."""

    def deliver(session_id: str, name: str, data: dict[str, Any]) -> bool:
        session = host.sessions.get(session_id)
        if session is None or not session.is_running:
            return False
        event = Event(name, event_data(data), type="external", origintype=PLATFORM_PROCESSOR)
        if durable:
            host.route_event(None, session, event)
        else:
            session.deliver(event)
        return True

    return deliver
