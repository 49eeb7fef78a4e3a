"""A callback's history for the console's detail page (``GET /admin/callbacks/{id}/history``):
the record, how its state changed and why, its status events, every delivery and push with each
attempt, and its flow session's active states, in one answer.

The pieces live where they are made: state changes and attempts in the history table
(``engine/callbacks/history.py``), with the rows not written yet still in memory; deliveries not
yet delivered (queued, retried, dead) in the dispatcher. Nothing secret goes out: device tokens
keep their last four characters, URLs lose their user, password and query, session data stays in.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..callbacks import history
from ..callbacks.service import NotFound
from ..notifications.delivery import DEAD, Delivery, callback_of
from ..runtime import Runtime
from .appkeys import RUNTIME
from .contract import ok, operation, ref
from .errors import ApiError
from .schemas import INTEGER, ISO_TIME, NULLABLE_ISO_TIME, NULLABLE_STRING, STRING, array, obj
from .times import iso, records

routes = web.RouteTableDef()
TAG = "administration: callbacks"
# Record keys whose values are shown reduced (a device token, a URL that may carry a key).
DEVICE_KEY, TARGET_KEY = "_device_notification_id", "_status_notification_target"

ATTEMPT = obj({"at": ISO_TIME, "result": {"enum": [history.DELIVERED, history.RETRY, history.DEAD]},
               "status": {"type": ["integer", "null"], "description": "the HTTP status, when there was one"},
               "error": STRING})
DELIVERY_STATUS = {"enum": ["pending", "delivered", "dead"]}
HISTORY = obj({
    "record": ref("CallbackRecord"),
    "timeline": array(obj({"at": ISO_TIME, "state": STRING, "from": NULLABLE_STRING, "reason": NULLABLE_STRING,
                           "source": STRING}, {"detail": STRING})),
    "events": array(obj({"id": INTEGER, "name": STRING, "at": ISO_TIME, "data": {"type": "object"}})),
    "deliveries": array(obj({"id": INTEGER, "event": NULLABLE_STRING, "type": STRING, "target": STRING,
                             "status": DELIVERY_STATUS, "attempts": array(ATTEMPT)})),
    "pushes": array(obj({"id": INTEGER, "event": NULLABLE_STRING, "at": NULLABLE_ISO_TIME, "status": DELIVERY_STATUS,
                         "attempts": array(ATTEMPT), "error": STRING})),
    "session": {"type": ["object", "null"], "properties": {
        "sessionid": STRING, "flow": STRING, "version": {"type": ["integer", "null"]}, "status": STRING,
        "active_states": array(STRING)}},
})


@routes.get("/admin/callbacks/{id}/history")
@operation("A callback's history: record, state changes, status events, deliveries and pushes with their "
           "attempts, its session's active states", TAG,
           ok(HISTORY, "oldest first in every list; times on the engine clock"),
           errors={404: "no such callback"}, path={"id": "the callback's _id"})
async def callback_history(request: web.Request) -> web.Response:
    runtime: Runtime = request.app[RUNTIME]
    cid = request.match_info["id"]
    try:
        # A copy: the record in memory is live, and what happens while the history is read (a
        # state change and its row) must show in both or in neither.
        record = dict(await runtime.callbacks.get(cid))
    except NotFound:
        raise ApiError(404, f"no callback {cid!r}") from None
    # Memory at one instant: the history rows not stored yet, and the deliveries not delivered
    # yet with their status now. The store is read after it, and the rows this node made since are
    # left out: a delivery that died during the read showed as dead with none of its attempts.
    mark = runtime.store.id_mark() if runtime.store is not None else None
    unwritten = runtime.callbacks.history.unwritten(cid) + runtime.notifications.dispatcher.history.unwritten(cid)
    undelivered = [(callback_of(d.key), _undelivered(d), "dead" if d.status == DEAD else "pending")
                   for d in runtime.notifications.dispatcher.of_callback(cid)]
    rows = await _history_rows(runtime, cid, unwritten, mark)
    deliveries = history.attempts_by_delivery(rows, history.DELIVERY)
    pushes = history.attempts_by_delivery(rows, history.PUSH)
    for about, shown, status in undelivered:
        found = (pushes if about is not None and about[1] == history.PUSH else deliveries)
        found.setdefault(shown["id"], shown)["status"] = status
    return web.json_response({
        "record": records([_shown_record(record)])[0],
        "timeline": [_iso(item, "at") for item in history.timeline(rows)],
        "events": await _events(runtime, cid),
        "deliveries": [_shown_delivery(d) for d in deliveries.values()],
        "pushes": [_shown_push(p) for p in pushes.values()],
        "session": await _session(runtime, record.get("_ors_session_id")),
    })


async def _history_rows(runtime: Runtime, cid: str, unwritten: list[dict[str, Any]],
                        mark: int | None) -> list[dict[str, Any]]:
    """Stored rows and ``unwritten`` (those on their way to the store when ``mark`` was taken), in
    the order they happened. Memory is read first: a row leaves memory only once it is committed,
    so none falls between. Stored rows this node minted after ``mark`` are newer than that view."""
    store = runtime.store
    if store is None or mark is None:
        return sorted(unwritten, key=lambda r: r["id"])
    return store.as_of(mark, await history.stored(store, cid), unwritten)


async def _events(runtime: Runtime, cid: str) -> list[dict[str, Any]]:
    out = []
    for row in await runtime.callbacks.event_rows(cid):
        data = row["data"]
        if isinstance(data, dict) and data.get(DEVICE_KEY):  # a message migration 10 kept as text is not
            data[DEVICE_KEY] = history.masked_token(str(data[DEVICE_KEY]))
        out.append({"id": row["id"], "name": row["name"], "at": iso(row["created_at"]), "data": data})
    return out


async def _session(runtime: Runtime, session_id: str | None) -> dict[str, Any] | None:
    """The flow session's status and active states (never its data)."""
    if not session_id:
        return None
    found = await runtime.manager.find(session_id)
    if found is None:
        return None
    return {key: found.get(key) for key in ("sessionid", "flow", "version", "status", "active_states")}


def _shown_record(record: dict[str, Any]) -> dict[str, Any]:
    shown = dict(record)
    if shown.get(DEVICE_KEY):
        shown[DEVICE_KEY] = history.masked_token(str(shown[DEVICE_KEY]))
    target = shown.get(TARGET_KEY)
    if isinstance(target, str) and target.lower().startswith(("http://", "https://")):
        shown[TARGET_KEY] = history.public_target("httpcb", target)
    return shown


def _undelivered(d: Delivery) -> dict[str, Any]:
    """A delivery with no attempt in the history yet."""
    event = (d.message.get("data") or {}) if d.type == "fcm" else d.message
    return {"id": d.id, "type": d.type, "event": event.get("event") or event.get("event_id"),
            "target": history.public_target(d.type, d.target), "attempts": []}


def _shown_delivery(d: dict[str, Any]) -> dict[str, Any]:
    return {"id": d["id"], "event": d["event"], "type": d["type"], "target": d["target"], "status": d["status"],
            "attempts": [_iso(a, "at") for a in d["attempts"]]}


def _shown_push(p: dict[str, Any]) -> dict[str, Any]:
    attempts = [_iso(a, "at") for a in p["attempts"]]
    return {"id": p["id"], "event": p["event"], "at": attempts[0]["at"] if attempts else None, "status": p["status"],
            "attempts": attempts, "error": p["attempts"][-1]["error"] if p["attempts"] else ""}


def _iso(item: dict[str, Any], field: str) -> dict[str, Any]:
    return {**item, field: iso(item[field])}
