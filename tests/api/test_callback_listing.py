"""Issue 13: the queries behind the console's callback list and report, against SQLite and
PostgreSQL: pages merged from one range per state come out as one sorted list, every filter
(the JSON reason, the search with LIKE wildcards as text) means the same on both databases,
the report groups by UTC day; and on SQLite, no statement reads the callbacks table end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import persistence
from engine.callbacks import listing
from engine.callbacks import rows as callback_rows
from engine.callbacks.listing import CallbackFilter
from engine.callbacks.records import format_time
from engine.storage import UnitOfWork
from tests.callbacks.test_query_plans import full_scans, plans

T0 = 1_777_593_600.0  # 2026-05-01T00:00:00Z
STATES = ("SCHEDULED", "QUEUED", "ROUTING", "COMPLETED", "COMPLETED", "PROCESSING", "COMPLETED")
REASONS = ("AGENT_CONNECTED", "CANCELLED", "FAIL_TIMEOUT_TTL")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}"
    return request.getfixturevalue("postgres").new_database()


def made(n: int) -> list[dict]:
    """``n`` records, one every 3 hours from T0, over states, services, numbers and reasons."""
    out = []
    for i in range(n):
        state = STATES[i % len(STATES)]
        record = {"_id": f"cb{i:04d}", "_service_name": ("sales", "support")[i % 2],
                  "_customer_number": f"+1555000{i % 5:04d}", "_callback_state": state,
                  "_desired_time": format_time(T0 + i * 10800), "_expiration_time": format_time(T0 + i * 10800 + 86400),
                  "_created_time": format_time(T0 + i * 10800), "note": ("50%_off", "50xx off", "plain")[i % 3]}
        if state == "COMPLETED":
            record["_callback_reason"] = REASONS[i % len(REASONS)]
        out.append(record)
    return out


async def stored(url: str, records: list[dict]):
    store = await persistence.open_store(url)
    unit = UnitOfWork()
    unit.add(callback_rows.CALLBACKS, [callback_rows.record_row(r) for r in records])
    await store.write(unit)
    return store


def expected(records: list[dict], f: CallbackFilter) -> list[str]:
    """The reference: the in-memory filter (itself checked against the API in test_callback_views)."""
    return [r["_id"] for r in listing.filter_records(records, f, 10_000, 0).records]


FILTERS = [
    CallbackFilter(), CallbackFilter(newest_first=False), CallbackFilter(service="support"),
    CallbackFilter(states=("QUEUED", "COMPLETED")), CallbackFilter(reason="CANCELLED"),
    CallbackFilter(reason="CANCELLED", service="sales", newest_first=False), CallbackFilter(number="+15550000003"),
    CallbackFilter(number="+15550000003", states=("COMPLETED",)),
    CallbackFilter(created_from=T0 + 5 * 86400, created_to=T0 + 9 * 86400),
    CallbackFilter(q="50%_off"), CallbackFilter(q="50%_OFF", service="sales"), CallbackFilter(q="CB001"),
    CallbackFilter(q="_"), CallbackFilter(q="cancelled", created_from=T0 + 86400),
]


async def test_pages_filters_and_totals_match_the_reference(db_url) -> None:
    records = made(120)
    store = await stored(db_url, records)
    try:
        for f in FILTERS:
            want = expected(records, f)
            assert want or f.q == "_", f  # every filter but one finds something (so the test means something)
            whole = await listing.list_page(store, f, 500, 0)
            assert [r["_id"] for r in whole.records] == want, f
            assert (whole.total, whole.total_exact) == (len(want), True), f
            for offset in (0, 7, len(want) - 3):
                page = await listing.list_page(store, f, 5, max(0, offset))
                assert [r["_id"] for r in page.records] == want[max(0, offset): max(0, offset) + 5], (f, offset)
    finally:
        await store.close()


async def test_a_total_beyond_the_cap_says_so(db_url, monkeypatch) -> None:
    store = await stored(db_url, made(30))
    monkeypatch.setattr(listing, "COUNT_CAP", 10)
    try:
        page = await listing.list_page(store, CallbackFilter(), 3, 0)
        assert (page.total, page.total_exact, len(page.records)) == (10, False, 3)
    finally:
        await store.close()


async def test_the_report_counts_by_utc_day_service_and_outcome(db_url) -> None:
    records = made(60)  # 7.5 days
    store = await stored(db_url, records)
    try:
        start, end = T0 + 86400, T0 + 5 * 86400
        got = await listing.daily_counts(store, start, end)
        assert got == listing.count_records(records, start, end)
        assert {r.day for r in got} == {"2026-05-02", "2026-05-03", "2026-05-04", "2026-05-05"}
        assert sum(r.count for r in got) == 32  # 8 a day
        outcomes = {r.outcome for r in got}
        assert {"SCHEDULED", "QUEUED", "AGENT_CONNECTED", "CANCELLED"} <= outcomes and "COMPLETED" not in outcomes
        only = await listing.daily_counts(store, start, end, "sales")
        assert only == listing.count_records(records, start, end, "sales") and {r.service for r in only} == {"sales"}
    finally:
        await store.close()


LIST_CASES = {
    "every state": CallbackFilter(), "oldest first": CallbackFilter(newest_first=False),
    "a service": CallbackFilter(service="s"), "some states": CallbackFilter(states=("QUEUED", "ROUTING")),
    "a time range": CallbackFilter(created_from=T0, created_to=T0 + 86400), "a number": CallbackFilter(number="+1"),
    "a reason": CallbackFilter(reason="CANCELLED"), "a search": CallbackFilter(q="x", service="s"),
}


@pytest.mark.parametrize("case", list(LIST_CASES))
async def test_no_list_query_scans_the_history(tmp_path: Path, case: str) -> None:
    found = await plans(tmp_path / "engine.db", lambda store: listing.list_page(store, LIST_CASES[case], 50, 100))
    assert any("callbacks" in sql for sql, _ in found), found
    assert full_scans(found) == []


async def test_the_report_reads_a_range_of_an_index(tmp_path: Path) -> None:
    found = await plans(tmp_path / "engine.db", lambda store: listing.daily_counts(store, T0, T0 + 86400, "s"))
    assert any("callbacks" in sql for sql, _ in found) and full_scans(found) == []
