"""The console's report: callbacks counted by UTC day of creation, service and outcome
(``GET /admin/reports/callbacks``), as JSON or as a CSV file for a spreadsheet.

The outcome is the state of an open callback and the ``_callback_reason`` of a COMPLETED one. The
range is at most 366 days (the query reads every callback created in it: see
``engine/callbacks/listing.py``). CSV follows RFC 4180 (CRLF, quotes where needed) and no cell can
start a formula: one starting with = + - @ (or a tab or carriage return) gets a leading '.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from aiohttp import web

from ..callbacks.listing import DAY, ReportRow, count_records, daily_counts
from .appkeys import RUNTIME
from .contract import Answer, Param, operation
from .errors import ApiError
from .query_params import query_choice, query_text, query_time
from .schemas import INTEGER, ISO_TIME, STRING, TIME_INPUT, array, obj
from .times import iso

routes = web.RouteTableDef()
TAG = "administration: reports"
DEFAULT_DAYS = 30
MAX_DAYS = 366
COLUMNS = ("day", "service", "outcome", "count")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

REPORT_ROW = obj({"day": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": "UTC day of creation"},
                  "service": STRING, "outcome": {**STRING, "description": "the state, or the reason once COMPLETED"},
                  "count": INTEGER})
REPORT = obj({"rows": array(REPORT_ROW), "from": ISO_TIME, "to": ISO_TIME})


@routes.get("/admin/reports/callbacks")
@operation("Callbacks counted by day of creation (UTC), service and outcome; JSON or CSV", TAG, (
    Answer(200, "the counts, by day, service and outcome", {
        "application/json": REPORT,
        "text/csv": {"type": "string", "description": "a header line (day,service,outcome,count), then a row per "
                                                      "count (RFC 4180)"}}),),
    errors={400: f"a bad parameter (the message names it), or a range longer than {MAX_DAYS} days"},
    query=(Param("from", f"created at or after this time (default: {DEFAULT_DAYS} days before to)", TIME_INPUT),
           Param("to", "created before this time (default: now, engine clock)", TIME_INPUT),
           Param("service", "only this service's callbacks", example="callback"),
           Param("format", "json (default) or csv", {"enum": ["json", "csv"]})))
async def callback_report(request: web.Request) -> web.StreamResponse:
    engine = request.app[RUNTIME]
    end = query_time(request, "to")
    start = query_time(request, "from")
    service = query_text(request, "service")
    as_csv = query_choice(request, "format", ("json", "csv"), "json") == "csv"
    if end is None:
        end = engine.clock.now() if start is None else start + DEFAULT_DAYS * DAY
    if start is None:
        start = max(0.0, end - DEFAULT_DAYS * DAY)
    if end <= start:
        raise ApiError(400, "query parameter 'to' must be after 'from'")
    if end - start > MAX_DAYS * DAY:
        raise ApiError(400, f"the report covers at most {MAX_DAYS} days: narrow from/to")
    callbacks = engine.callbacks
    if callbacks.store is None:
        rows = count_records(callbacks.records.values(), start, end, service)
    else:
        rows = await daily_counts(callbacks.store, start, end, service)
    if as_csv:
        name = f"callbacks-{iso(start)[:10]}-{iso(end)[:10]}.csv"
        return web.Response(body=to_csv(rows).encode("utf-8"), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return web.json_response({"rows": [{"day": r.day, "service": r.service, "outcome": r.outcome, "count": r.count}
                                       for r in rows], "from": iso(start), "to": iso(end)})


def to_csv(rows: Iterable[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: CRLF, quotes only where needed
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([safe_cell(r.day), safe_cell(r.service), safe_cell(r.outcome), r.count])
    return out.getvalue()


def safe_cell(value: str) -> str:
    """A text cell a spreadsheet shows as text: one that would start a formula gets a leading '."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value
