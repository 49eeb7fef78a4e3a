"""The console's callback list: every callback, open or completed, filtered, searched and paged
(``GET /admin/callbacks``). The callback API lists one service's callbacks by GMS filters; this
one reads across services, by creation time, for the people who run the contact center.

The queries are ``engine/callbacks/listing.py``'s (what an index serves and what it does not is
said there). A record still in memory is shown as it is now: the stored row may lag it by a batch.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..callbacks.listing import COUNT_CAP, SEARCH_WINDOW, CallbackFilter, filter_records, list_page
from ..callbacks.vocabulary import CallbackState, CompletionReason
from .appkeys import RUNTIME
from .body import query_int
from .contract import Param, ok, operation, ref
from .errors import ApiError
from .query_params import query_choice, query_choices, query_text, query_time
from .schemas import BOOLEAN, INTEGER, TIME_INPUT, array, obj
from .times import records

routes = web.RouteTableDef()
TAG = "administration: callbacks"
MAX_LIMIT = 500
MAX_OFFSET = 100_000  # each state's part reads offset + limit index entries: page deeper with from/to
MAX_SEARCH = 100

CALLBACK_PAGE = obj({"callbacks": array(ref("CallbackRecord")), "total": INTEGER, "total_exact": BOOLEAN,
                     "limit": INTEGER, "offset": INTEGER})


@routes.get("/admin/callbacks")
@operation("List callbacks of every service: filter, search, page (the console's list)", TAG,
           ok(CALLBACK_PAGE, "newest first unless order=oldest; total is at most "
                             f"{COUNT_CAP} (total_exact false: there are more)"),
           errors={400: "a bad parameter (the message names it)"},
           description=f"reason and q look at the newest {SEARCH_WINDOW} callbacks per state that match the "
                       "other filters (use from/to to reach older ones); every other filter is served by an index.",
           query=(
               Param("service", "only this service's callbacks", example="callback"),
               Param("state", "only these states (repeat it, or separate them with commas)",
                     {"type": "string"}, example="QUEUED,SCHEDULED"),
               Param("reason", "only COMPLETED callbacks with this _callback_reason",
                     {"enum": [r.value for r in CompletionReason]}),
               Param("number", "only callbacks to this _customer_number (as stored, e.g. +15551234567)"),
               Param("from", "created at or after this time", TIME_INPUT),
               Param("to", "created before this time", TIME_INPUT),
               Param("q", f"a text in the id, the number or any value of the record (at most {MAX_SEARCH} "
                          "characters; case-insensitive)", {"type": "string", "maxLength": MAX_SEARCH}),
               Param("order", "newest (default) or oldest first, by creation time", {"enum": ["newest", "oldest"]}),
               Param("limit", f"at most this many (default 50, at most {MAX_LIMIT})",
                     {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
               Param("offset", f"skip this many (default 0, at most {MAX_OFFSET})",
                     {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET})))
async def list_callbacks(request: web.Request) -> web.Response:
    found = callback_filter(request)
    limit = query_int(request, "limit", 50, 1, MAX_LIMIT)
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    service = request.app[RUNTIME].callbacks
    if service.store is None:
        page = filter_records(service.records.values(), found, limit, offset)
        shown = page.records
    else:
        page = await list_page(service.store, found, limit, offset)
        shown = [service.records.get(r["_id"], r) for r in page.records]
    return web.json_response({"callbacks": records(shown), "total": page.total, "total_exact": page.total_exact,
                              "limit": limit, "offset": offset})


def callback_filter(request: web.Request) -> CallbackFilter:
    """The list's filters from the query; 400 naming the first bad one."""
    created_from, created_to = query_time(request, "from"), query_time(request, "to")
    if created_from is not None and created_to is not None and created_to < created_from:
        raise ApiError(400, "query parameter 'to' is before 'from'")
    kw: dict[str, Any] = {
        "service": query_text(request, "service"),
        "states": query_choices(request, "state", [s.value for s in CallbackState]),
        "reason": query_choice(request, "reason", [r.value for r in CompletionReason]),
        "number": query_text(request, "number"),
        "created_from": created_from, "created_to": created_to,
        "q": query_text(request, "q", MAX_SEARCH),
        "newest_first": query_choice(request, "order", ("newest", "oldest"), "newest") == "newest",
    }
    return CallbackFilter(**kw)
