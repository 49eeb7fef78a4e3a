"""Issue 13: the callback report (GET /admin/reports/callbacks): counts by UTC day of creation,
service and outcome as JSON or CSV (RFC 4180, no cell can start a spreadsheet formula), the last
30 days by default, at most 366 days, and a 400 naming each bad parameter."""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest

from engine.api.appkeys import RUNTIME
from engine.api.reports import safe_cell, to_csv
from engine.callbacks.listing import ReportRow
from tests.api.console_support import ADMIN, BASE, CLIENT, create, make_engine
from tests.support.eventually import eventually

REPORT = "/admin/reports/callbacks"


@pytest.fixture(params=[True, False], ids=["stored", "in-memory"])
async def engine(request, aiohttp_client, tmp_path):
    return await make_engine(aiohttp_client, tmp_path, persistence=request.param)


async def test_counts_by_day_service_and_outcome_as_json_and_csv(engine) -> None:
    client = engine
    made = [await create(client, "waiting", _customer_number=f"+1555090003{i}") for i in range(3)]
    made.append(await create(client, "callback", _customer_number="+15550900039"))
    assert (await client.delete(f"{BASE}/waiting/{made[0]['_id']}", headers=CLIENT)).status == 200

    async def listed() -> list[dict]:
        return (await (await client.get("/admin/callbacks", headers=ADMIN)).json())["callbacks"]
    records = await eventually(listed, lambda rs: sum(r["_callback_state"] == "COMPLETED" for r in rs) == 2,
                               timeout=15, expected="the cancelled and the answered callbacks COMPLETED")
    want = Counter((r["_created_time"][:10], r["_service_name"],
                    r.get("_callback_reason") or r["_callback_state"]) for r in records)

    r = await client.get(REPORT, headers=ADMIN)
    body = await r.json()
    assert r.status == 200, body
    assert Counter({(row["day"], row["service"], row["outcome"]): row["count"] for row in body["rows"]}) == want
    assert {"CANCELLED", "AGENT_CONNECTED", "QUEUED"} <= {row["outcome"] for row in body["rows"]}
    now = client.app[RUNTIME].clock.now()
    assert body["to"] <= (await (await client.get("/health", headers=ADMIN)).json())["clock"]
    span = _seconds(body["to"]) - _seconds(body["from"])
    assert span == 30 * 86400 and abs(_seconds(body["to"]) - now) < 600

    only = await (await client.get(f"{REPORT}?service=waiting", headers=ADMIN)).json()
    assert {row["service"] for row in only["rows"]} == {"waiting"}
    assert sum(row["count"] for row in only["rows"]) == 3
    none = await (await client.get(f"{REPORT}?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z",
                                   headers=ADMIN)).json()
    assert none == {"rows": [], "from": "2020-01-01T00:00:00.000Z", "to": "2020-02-01T00:00:00.000Z"}

    r = await client.get(f"{REPORT}?format=csv", headers=ADMIN)
    assert r.status == 200 and r.content_type == "text/csv" and r.charset == "utf-8"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="callbacks-')
    text = await r.text()
    assert text.startswith("day,service,outcome,count\r\n") and text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["day", "service", "outcome", "count"]
    assert [[row["day"], row["service"], row["outcome"], str(row["count"])] for row in body["rows"]] == rows[1:]


def _seconds(iso: str) -> float:
    from engine.callbacks.records import parse_time
    return parse_time(iso, "t")


def test_csv_quotes_as_rfc_4180_and_neutralises_formulas() -> None:
    rows = [ReportRow("2026-05-01", "=HYPERLINK(\"http://x\",\"y\")", "QUEUED", 2),
            ReportRow("2026-05-01", "a,b", "CANCELLED", 1), ReportRow("2026-05-01", 'say "hi"', "QUEUED", 3),
            ReportRow("2026-05-01", "+1", "-x", 4), ReportRow("2026-05-01", "@sum", "\tq", 5),
            ReportRow("2026-05-01", "line\nbreak", "QUEUED", 6)]
    text = to_csv(rows)
    assert text.splitlines()[0] == "day,service,outcome,count"
    assert '"\'=HYPERLINK(""http://x"",""y"")"' in text and '"a,b"' in text and '"say ""hi"""' in text
    parsed = list(csv.reader(io.StringIO(text)))[1:]
    assert [row[1] for row in parsed] == ["'=HYPERLINK(\"http://x\",\"y\")", "a,b", 'say "hi"', "'+1", "'@sum",
                                         "line\nbreak"]
    assert [row[2] for row in parsed][3:5] == ["'-x", "'\tq"]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in parsed for cell in row)
    assert safe_cell("plain") == "plain" and safe_cell("") == ""


@pytest.mark.parametrize(("query", "named"), [
    ("from=2025-01-01T00:00:00Z&to=2026-01-03T00:00:00Z", "366 days"), ("from=nope", "'from'"),
    ("to=2026-02-30T00:00:00Z", "'to'"), ("from=2026-05-02T00:00:00Z&to=2026-05-01T00:00:00Z", "'to'"),
    ("format=xlsx", "'format'"), ("service=%01", "'service'"),
])
async def test_a_bad_parameter_is_a_400(engine, query, named) -> None:
    r = await engine.get(f"{REPORT}?{query}", headers=ADMIN)
    body = await r.json()
    assert r.status == 400, body
    assert named in body["message"], body
