"""A transaction list's preview: the message each of its events would send
(``POST /admin/transaction-lists/preview`` for a list not saved yet, ``GET
/admin/transaction-lists/{name}/preview`` for a saved one).

Each message is built by the notifier's own ``status_message`` for a sample callback, so the
preview shows the fields, their order and the ``notify_custom`` keys exactly as they are sent; a
parameter the sample has no value for shows as ``<name>`` (sent when the record or the flow
holds it, left out otherwise) and is listed under ``placeholders``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..callbacks.event_catalog import FLOW_EVENTS
from ..callbacks.vocabulary import CallbackState, CompletionReason
from ..notifications.notifier import status_message
from ..notifications.transaction_list import TransactionList, TransactionListError, parse
from .appkeys import RUNTIME
from .body import read_list_text
from .contract import Body, ok, operation
from .errors import ApiError
from .schemas import ANY_OBJECT, STRING, array, obj, string_map

routes = web.RouteTableDef()
TAG = "administration: notifications"
EXAMPLE = "[_cbe_on_service_create]\nnotify_params = _service_id, _customer_number, c_custom\n"

SAMPLE_RECORD: dict[str, Any] = {
    "_id": "4f1c9a0b2d3e4f5a6b7c8d9e0f1a2b3c", "_service_name": "callback", "_customer_number": "+15551234567",
    "_desired_time": "2026-05-01T14:00:00.000Z", "_expiration_time": "2026-05-02T14:00:00.000Z",
    "_created_time": "2026-05-01T13:58:00.000Z", "_urs_virtual_queue": "Callback_VQ",
    "_call_direction": "USERTERMINATED",
}
SAMPLE_VALUES: dict[str, Any] = {
    "_service_id": SAMPLE_RECORD["_id"], "_v_queue": "Callback_VQ", "_vq_for_outbound_calls": "Outbound_VQ",
    "c_agent_id": "agent-1", "c_agent_extension": "7001", "c_dialed_number": "+15551234567",
    "c_call_result": 0, "c_call_num_attempt": 1, "c_termination_type": "COMPLETED.AGENT_CONNECTED",
}
# The state a callback is usually in when each event is reported.
_STATES = {"_cbe_on_callback_scheduled": CallbackState.SCHEDULED,
           "_cbe_on_callback_rescheduled": CallbackState.SCHEDULED,
           "_cbe_on_connect_treatment_start": CallbackState.ROUTING, "_cbe_on_customer_queued": CallbackState.ROUTING,
           "_cbe_on_route_to_agent": CallbackState.PROCESSING, "_cbe_on_service_exit": CallbackState.COMPLETED,
           "_cbe_on_callback_cancelled": CallbackState.COMPLETED,
           "_cbe_on_callback_submit_failed": CallbackState.COMPLETED,
           "_cbe_on_callback_processing_failed": CallbackState.COMPLETED}

PREVIEW = obj({"name": STRING, "events": array(obj({"event": STRING, "message": ANY_OBJECT,
                                                   "placeholders": array(STRING)})),
               "warnings": array(STRING), "properties": string_map(STRING)})


@routes.post("/admin/transaction-lists/preview")
@operation("Preview a transaction list before saving it: the message each event would send", TAG,
           ok(PREVIEW, "the messages, in the list's order"),
           errors={400: "not UTF-8, empty, or refused (the answer names the section and line)"},
           body=Body({"type": "string"}, ("text/plain",), "the list in the GMS_Events.cfg format", example=EXAMPLE))
async def preview_text(request: web.Request) -> web.Response:
    text = await read_list_text(request)
    try:
        tlist = parse(text, "preview")
    except TransactionListError as e:
        raise ApiError(400, f"transaction list refused: {e}", "InvalidTransactionList",
                       section=e.section, line=e.line) from None
    return web.json_response(preview(tlist, request.app[RUNTIME].clock.now()))


@routes.get("/admin/transaction-lists/{name}/preview")
@operation("Preview a saved transaction list: the message each event would send", TAG,
           ok(PREVIEW, "the messages, in the list's order"), errors={404: "no such list"},
           path={"name": "the transaction list"}, examples={"name": "GMS_Events"})
async def preview_saved(request: web.Request) -> web.Response:
    tlist = request.app[RUNTIME].notifications.lists.get(request.match_info["name"])
    if tlist is None:
        raise ApiError(404, f"no transaction list {request.match_info['name']!r}")
    return web.json_response(preview(tlist, request.app[RUNTIME].clock.now()))


def preview(tlist: TransactionList, now: float) -> dict[str, Any]:
    events = []
    for name, spec in tlist.events.items():
        state = _STATES.get(name, CallbackState.QUEUED)
        record = {**SAMPLE_RECORD, "_callback_state": state.value}
        if state == CallbackState.COMPLETED:
            reason = CompletionReason.CANCELLED if "cancel" in name else CompletionReason.AGENT_CONNECTED
            record["_callback_reason"] = reason.value
        values = dict(SAMPLE_VALUES) if name in FLOW_EVENTS else {**record, **SAMPLE_VALUES}
        placeholders = [p for p in spec.params if p not in values and p not in record]
        values.update({p: f"<{p}>" for p in placeholders})
        events.append({"event": name, "message": status_message(name, now, record, values, spec.params, spec.custom),
                       "placeholders": placeholders})
    return {"name": tlist.name, "events": events, "warnings": tlist.warnings, "properties": tlist.properties}
