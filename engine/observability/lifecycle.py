"""The lifecycle log: one INFO line when a callback is created, changes state or completes, when a
session starts, ends or fails, each with ``callback_id``, ``session_id`` and ``service`` as fields.
A delivery or push that went out is a DEBUG line: a notification load makes one per message (the
INFO line cost ~4 % of the event loop), and its outcome is already kept where an operator looks
for it (the attempt in the callback's history, the delivered counter in the metrics); failures,
retries and dead letters stay INFO and WARNING lines (the dispatcher logs those itself).

The fields go as ``extra=`` and the messages are constant strings: nothing is formatted unless a
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
        record = event.record
        if event.name != STATUS_UPDATED_EVENT or record["_callback_state"] == COMPLETED:
            return  # a completion has its own line, with the reason
        info_line(log, "callback state changed", {
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
        info_line(log, "session started", {
            "callback_id": data.get("_service_id"), "session_id": session.id, "service": data.get("_service_name"),
            "flow": flow})

    def _session_ended(self, session: Session) -> None:
        fields = {"callback_id": _variable(session, "_service_id"), "session_id": session.id,
                  "service": _variable(session, "_service_name"), "status": session.status}
        if session.status == FAILED:
            log.warning("session failed", extra={**fields, "error": session.error})
        else:
            info_line(log, "session ended", {**fields, "final_state": session.final_state})

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


def _variable(session: Session, name: str) -> Any:
    """A flow variable, None when the session has none of that name (not a callback's flow)."""
    data = session.datamodel
    return data.variable(name) if data.defines(name) else None
