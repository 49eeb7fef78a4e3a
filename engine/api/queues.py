"""The console's live view of the virtual queues (``GET /admin/queues``), polled every few seconds.

Memory only: the platform's figures per queue (``queue_stats``: waiting, EWT, agents) and the
callbacks waiting in each, from an index of the live records by queue (``live_indexes``), with
their place in the platform's queue. It costs the callbacks in the queues, never the history.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..callbacks.records import parse_time
from .appkeys import RUNTIME
from .body import query_int
from .contract import Param, ok, operation
from .live_indexes import index_of, queue_of
from .schemas import INTEGER, ISO_TIME, NULLABLE_ISO_TIME, NUMBER, STRING, array, obj
from .times import iso

routes = web.RouteTableDef()
TAG = "administration: callbacks"
MAX_SHOWN = 500

WAITING_CALLBACK = obj({"id": STRING, "service": STRING, "number": STRING, "state": STRING,
                        "since": {**NULLABLE_ISO_TIME, "description": "when it was submitted (engine clock)"},
                        "position": {"type": ["integer", "null"],
                                     "description": "1-based place in the platform's queue; null while an agent is "
                                                    "being reserved or the customer dialled"}})
QUEUE = obj({"name": STRING, "waiting": {**INTEGER, "description": "interactions waiting in the platform's queue"},
             "ewt_seconds": {**NUMBER, "description": "estimated wait of a new arrival; -1 unknown"},
             "agents_staffed": INTEGER, "agents_busy": INTEGER, "agents_ready": INTEGER,
             "callbacks_in_queue": {**INTEGER, "description": "callbacks QUEUED or ROUTING in this queue"},
             "callbacks_waiting": array(WAITING_CALLBACK)})


@routes.get("/admin/queues")
@operation("The virtual queues now: waiting, EWT, agents, and the callbacks in each (memory only)", TAG,
           ok(obj({"queues": array(QUEUE), "now": {**ISO_TIME, "description": "engine clock"}})),
           errors={400: "a bad limit"},
           query=(Param("limit", f"callbacks listed per queue, by position (default 100, at most {MAX_SHOWN})",
                        {"type": "integer", "minimum": 0, "maximum": MAX_SHOWN}),))
async def list_queues(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, 0, MAX_SHOWN)
    engine = request.app[RUNTIME]
    platform, callbacks = engine.platform, engine.callbacks
    by_queue = index_of(callbacks, queue_of)
    queues = []
    for name in platform.queues:
        stats = platform.queue_stats(name)
        ids = by_queue.ids(name)
        waiting = [shown for cid in ids if (shown := _waiting(callbacks.records.get(cid), name, platform)) is not None]
        waiting.sort(key=_by_position)
        queues.append({"name": name, "waiting": stats.waiting, "ewt_seconds": stats.ewt_seconds,
                       "agents_staffed": stats.agents_staffed, "agents_busy": stats.agents_busy,
                       "agents_ready": stats.agents_free, "callbacks_in_queue": len(ids),
                       "callbacks_waiting": [{k: v for k, v in w.items() if k != "_at"} for w in waiting[:limit]]})
    return web.json_response({"queues": queues, "now": iso(engine.clock.now())})


def _waiting(record: dict[str, Any] | None, queue: str, platform: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    sid = record.get("_ors_session_id")
    found = platform.position(sid) if sid else None
    since = record.get("_submitted_time")
    try:
        at = parse_time(since, "_submitted_time")
    except ValueError:
        at, since = 0.0, None
    return {"id": record["_id"], "service": record["_service_name"], "number": record["_customer_number"],
            "state": record["_callback_state"], "since": since,
            "position": found.position if found is not None and found.queue == queue else None, "_at": at}


def _by_position(shown: dict[str, Any]) -> tuple[int, float, str]:
    position = shown["position"]
    return (position if position is not None else 1 << 30, shown["_at"], shown["id"])
