"""The console's click-to-call-in records (``GET /admin/call-ins``): open callbacks carrying an
access code, i.e. a customer was given a number and a code to call in with.

A single engine answers from memory, from an index of the live records that carry a code
(``live_indexes``), latest code first. A cluster node holds only its partitions' records, so it
reads every node's from the database (``cluster_reads``, bounded), latest created first; a record
this node holds is shown as it is in its memory (the stored row may lag it by a batch). A code is
good only while its callback is open, so a completed callback leaves the list (its record, with
the code, stays in the callback list). The code is shown: it is the customer's, not an engine
secret, and the roles that read this list read the callback records that hold it anyway.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..callbacks.records import MAX_TIME, format_time, parse_time
from ..callbacks.service import CallbackService
from .appkeys import RUNTIME
from .body import query_int
from .cluster_reads import CALL_INS_COUNT_CAP, call_in_page, call_in_total
from .contract import Param, ok, operation
from .live_indexes import CALL_IN, call_in_of, index_of
from .schemas import INTEGER, NULLABLE_ISO_TIME, NULLABLE_STRING, STRING, array, obj

routes = web.RouteTableDef()
TAG = "administration: callbacks"

CALL_IN_RECORD = obj({"id": STRING, "service": STRING, "number": STRING, "access_number": NULLABLE_STRING,
                      "access_code": STRING, "expires": {**NULLABLE_ISO_TIME, "description": "when the code runs "
                                                          "out (engine clock); null if the flow set no time"},
                      "state": STRING})


@routes.get("/admin/call-ins")
@operation("Click-to-call-in records: open callbacks carrying an access code (latest first)", TAG,
           ok(obj({"call_ins": array(CALL_IN_RECORD), "total": INTEGER, "limit": INTEGER, "offset": INTEGER}),
              f"a cluster node lists every node's, latest created first, and counts at most {CALL_INS_COUNT_CAP}"),
           errors={400: "a bad limit or offset"},
           query=(Param("limit", "at most this many (default 100)", {"type": "integer", "minimum": 1, "maximum": 1000}),
                  Param("offset", "skip this many (default 0)", {"type": "integer", "minimum": 0, "maximum": 10**9})))
async def list_call_ins(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, 1, 1000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    callbacks = request.app[RUNTIME].callbacks
    if callbacks.cluster is not None and callbacks.store is not None:
        return web.json_response(await _every_node(callbacks, limit, offset))
    ids = index_of(callbacks, call_in_of).ids(CALL_IN)
    ids.reverse()  # the group keeps the order codes were given in
    shown = [_call_in(r) for cid in ids[offset: offset + limit] if (r := callbacks.records.get(cid)) is not None]
    return web.json_response({"call_ins": shown, "total": len(ids), "limit": limit, "offset": offset})


async def _every_node(callbacks: CallbackService, limit: int, offset: int) -> dict[str, Any]:
    """A cluster: every node's call-in records, as stored, but this node's as they are now."""
    assert callbacks.store is not None
    total = await call_in_total(callbacks.store)
    stored = await call_in_page(callbacks.store, limit, offset) if offset < total else []
    now = [callbacks.records.get(r["_id"], r) for r in stored]
    return {"call_ins": [_call_in(r) for r in now if call_in_of(r) is not None], "total": total, "limit": limit,
            "offset": offset}


def _call_in(record: dict[str, Any]) -> dict[str, Any]:
    number = record.get("_access_number")
    return {"id": record["_id"], "service": record["_service_name"], "number": record["_customer_number"],
            "access_number": None if number is None else str(number), "access_code": str(record["_access_code"]),
            "expires": _time(record.get("_access_expires")), "state": record["_callback_state"]}


def _time(value: Any) -> str | None:
    """The flow sets the expiry as the platform gave it (epoch seconds): shown in the API's format."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return format_time(value) if 0 <= value <= MAX_TIME else None
        return format_time(parse_time(value, "_access_expires"))
    except ValueError:
        return None
