"""The lifecycle log: what happens to callbacks and flow sessions, each line with ``callback_id``,
``session_id`` and ``service`` as fields.

At INFO a callback leaves two lines, its creation and its outcome ("callback completed", with the
reason): the log says what was asked and how it ended, as a contact center's logs do, and stays
small enough to keep at the engine's default level under load. Each state change between them
("callback state changed") and the start and end of the callback's flow session are DEBUG lines:
the full history of a callback is always in the API (``GET
/genesys/1/service/callback/{service}/{id}/events``, ``GET /admin/callbacks/{id}/history``), which
keeps every change with its time, so the INFO log does not repeat it (six more lines per callback,
and their flushes, cost ~0.06 ms of the engine's CPU each time). A session that is not a
callback's (started through the session API) has no other line: its start and end are INFO. A
session that failed is a WARNING, always.

A delivery or push that went out is a DEBUG line: a notification load makes one per message, and its
outcome is already kept where an operator looks for it (the attempt in the callback's history, the
delivered counter in the metrics); failures, retries and dead letters stay INFO and WARNING lines
(the dispatcher logs those itself).

The fields go as ``extra=`` and the messages are constant strings: nothing is built unless a
handler writes the line, and a JSON log gets them as keys to filter on (``callback_id=...``).
"""

from __future__ import annotations

import logging
from typing import Any

from ..callbacks.bus import CallbackBus, CallbackCompleted, CallbackCreated, StatusEvent
from ..callbacks.lifecycle import STATUS_UPDATED_EVENT
from ..callbacks.service import CallbackService
from ..callbacks.vocabulary import CallbackState
from ..logs import info_line
from ..notifications.delivery import Delivery, Dispatcher
from ..scxml import Session
from ..sessions.manager import SessionManager

log = logging.getLogger("engine.lifecycle")
COMPLETED = CallbackState.COMPLETED.value
FAILED = "failed"


class LifecycleLog:
    """Subscribes where things happen and writes the lines; holds no state of its own."""

    def __init__(self, *, manager: SessionManager, callbacks: CallbackService, bus: CallbackBus,
                 dispatcher: Dispatcher) -> None:
        self.callbacks = callbacks
        bus.subscribe(CallbackCreated, self._created)
        bus.subscribe(StatusEvent, self._status)
        bus.subscribe(CallbackCompleted, self._completed)
        manager.on_session_start.append(self._session_started)
        manager.on_session_end.append(self._session_ended)
        dispatcher.on_delivered.append(self._delivered)

    # -- callbacks ----------------------------------------------------------------------------
    def _created(self, event: CallbackCreated) -> None:
        record = event.record
        info_line(log, "callback created", {
            "callback_id": record["_id"], "session_id": None, "service": record["_service_name"],
            "desired_time": record["_desired_time"]})

    def _status(self, event: StatusEvent) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return  # checked first: most callbacks change state several times
        record = event.record
        if event.name != STATUS_UPDATED_EVENT or record["_callback_state"] == COMPLETED:
            return  # a completion has its own line, with the reason
        log.debug("callback state changed", extra={
            "callback_id": record["_id"], "session_id": event.session_id, "service": record["_service_name"],
            "state": record["_callback_state"]})

    def _completed(self, event: CallbackCompleted) -> None:
        record = event.record
        info_line(log, "callback completed", {
            "callback_id": record["_id"], "session_id": record.get("_ors_session_id"),
            "service": record["_service_name"], "state": COMPLETED, "reason": event.reason})

    # -- sessions -------------------------------------------------------------------------------
    def _session_started(self, session: Session, flow: str, data: dict[str, Any]) -> None:
        # A callback's flow gets its record's id and service as _service_id and _service_name.
        callback_id = data.get("_service_id")
        level = logging.INFO if callback_id is None else logging.DEBUG
        if log.isEnabledFor(level):
            _line(level, "session started", {
                "callback_id": callback_id, "session_id": session.id, "service": data.get("_service_name"),
                "flow": flow})

    def _session_ended(self, session: Session) -> None:
        failed = session.status == FAILED
        if not failed and not log.isEnabledFor(logging.INFO):
            return
        callback_id = _variable(session, "_service_id")
        level = logging.WARNING if failed else logging.INFO if callback_id is None else logging.DEBUG
        if not log.isEnabledFor(level):
            return
        fields = {"callback_id": callback_id, "session_id": session.id,
                  "service": _variable(session, "_service_name"), "status": session.status}
        if failed:
            log.warning("session failed", extra={**fields, "error": session.error})
        else:
            _line(level, "session ended", {**fields, "final_state": session.final_state})

    # -- deliveries -----------------------------------------------------------------------------
    def _delivered(self, d: Delivery) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        fields = d.log_fields()
        record = self.callbacks.records.get(fields["callback_id"] or "")
        fields["session_id"] = record.get("_ors_session_id") if record is not None else None
        if d.type == "fcm":
            data = d.message.get("data")
            log.debug("push sent", extra={**fields, "event": data.get("event") if isinstance(data, dict) else None})
        else:
            log.debug("delivery delivered", extra={**fields, "event": d.message.get("event_id")})


def _line(level: int, message: str, fields: dict[str, Any]) -> None:
    """An INFO line the cheap way (``info_line``), a line of another level the usual way."""
    if level == logging.INFO:
        info_line(log, message, fields)
    else:
        log.log(level, message, extra=fields)


def _variable(session: Session, name: str) -> Any:
    """A flow variable, None when the session has none of that name (not a callback's flow)."""
    return session.datamodel.lookup(name)
