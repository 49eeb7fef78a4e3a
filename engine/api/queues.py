"""The console's live view of the virtual queues (``GET /admin/queues``), polled every few seconds.

The platform's figures per queue (``queue_stats``: waiting, EWT, agents) and the callbacks
waiting in each, with their place in the platform's queue. A single engine answers from memory
alone: an index of the live records by queue (``live_indexes``). A cluster node holds only its
partitions' records, so it adds every other node's from the database (``cluster_reads``: the rows
QUEUED or ROUTING, bounded); its own come from memory, which is never behind the stored rows. The
platform process sends every node the whole of each queue, so positions are known for the
sessions of every node. It costs the callbacks in the queues, never the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..callbacks.records import parse_time
from ..callbacks.service import CallbackService
from .appkeys import RUNTIME
from .body import query_int
from .cluster_reads import WaitingRow, waiting_counts, waiting_rows
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
@operation("The virtual queues now: waiting, EWT, agents, and the callbacks in each (memory only; a cluster node "
           "adds the other nodes' callbacks from the database)", TAG,
           ok(obj({"queues": array(QUEUE), "now": {**ISO_TIME, "description": "engine clock"}})),
           errors={400: "a bad limit"},
           query=(Param("limit", f"callbacks listed per queue, by position (default 100, at most {MAX_SHOWN})",
                        {"type": "integer", "minimum": 0, "maximum": MAX_SHOWN}),))
async def list_queues(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, 0, MAX_SHOWN)
    engine = request.app[RUNTIME]
    platform, callbacks = engine.platform, engine.callbacks
    by_queue = index_of(callbacks, queue_of)
    elsewhere = await _other_nodes(callbacks) if callbacks.cluster is not None and callbacks.store is not None \
        else None
    queues = []
    for name in platform.queues:
        stats = platform.queue_stats(name)
        ids = by_queue.ids(name)
        waiting = [shown for cid in ids if (shown := _waiting(callbacks.records.get(cid), name, platform)) is not None]
        in_queue = len(ids)
        if elsewhere is not None:
            rows = elsewhere.rows.get(name, [])
            waiting += [_shown(r.id, r.service, r.number, r.state, r.submitted, r.session_id, name, platform)
                        for r in rows]
            in_queue = elsewhere.counts.get(name, 0) if elsewhere.counts is not None else in_queue + len(rows)
        waiting.sort(key=_by_position)
        queues.append({"name": name, "waiting": stats.waiting, "ewt_seconds": stats.ewt_seconds,
                       "agents_staffed": stats.agents_staffed, "agents_busy": stats.agents_busy,
                       "agents_ready": stats.agents_free, "callbacks_in_queue": in_queue,
                       "callbacks_waiting": [{k: v for k, v in w.items() if k != "_at"} for w in waiting[:limit]]})
    return web.json_response({"queues": queues, "now": iso(engine.clock.now())})


@dataclass(frozen=True)
class _Elsewhere:
    """The waiting callbacks this node does not hold, by queue, as stored; ``counts``: every
    node's per queue as stored, when there were too many rows to count them here."""

    rows: dict[str, list[WaitingRow]]
    counts: dict[str, int] | None


async def _other_nodes(callbacks: CallbackService) -> _Elsewhere:
    """A cluster: the other nodes' waiting callbacks from the database (this node's own are in
    memory, and more current than their rows)."""
    assert callbacks.store is not None
    stored, more = await waiting_rows(callbacks.store)
    rows: dict[str, list[WaitingRow]] = {}
    for row in stored:
        if row.queue is not None and row.id not in callbacks.records:
            rows.setdefault(row.queue, []).append(row)
    return _Elsewhere(rows, await waiting_counts(callbacks.store) if more else None)


def _waiting(record: dict[str, Any] | None, queue: str, platform: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    return _shown(record["_id"], record["_service_name"], record["_customer_number"], record["_callback_state"],
                  record.get("_submitted_time"), record.get("_ors_session_id"), queue, platform)


def _shown(cid: str, service: str, number: str, state: str, since: Any, sid: str | None, queue: str,
           platform: Any) -> dict[str, Any]:
    found = platform.position(sid) if sid else None
    try:
        at = parse_time(since, "_submitted_time")
    except ValueError:
        at, since = 0.0, None
    return {"id": cid, "service": service, "number": number, "state": state, "since": since,
            "position": found.position if found is not None and found.queue == queue else None, "_at": at}


def _by_position(shown: dict[str, Any]) -> tuple[int, float, str]:
    position = shown["position"]
    return (position if position is not None else 1 << 30, shown["_at"], shown["id"])
