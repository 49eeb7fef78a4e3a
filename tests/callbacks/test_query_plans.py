"""What the callback queries, the start-up load and the retention purge read is a range of an
index, never the whole callbacks table: their cost must not grow with the history (issue 15).

Each query runs for real against SQLite while the statements are captured; SQLite's own plan
for each (``EXPLAIN QUERY PLAN``) must search an index instead of scanning the table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from engine import persistence
from engine.callbacks import event_groups, history
from engine.callbacks import rows as callback_rows


async def plans(path: Path, run: Callable[[Any], Awaitable[Any]]) -> list[tuple[str, list[str]]]:
    """The statements ``run(store)`` sent to the database, each with SQLite's plan for it."""
    store = await persistence.open_store(f"sqlite+aiosqlite:///{path}")
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "DELETE")):
            sent.append((statement, parameters))

    event.listen(store.engine.sync_engine, "before_cursor_execute", capture)
    try:
        await run(store)
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", capture)
        await store.close()
    db = sqlite3.connect(path)
    try:
        return [(sql, [row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]) for sql, params in sent]
    finally:
        db.close()


def full_scans(found: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """Statements whose plan reads a callbacks table from end to end."""
    return [(sql, steps) for sql, steps in found
            if any(step.startswith(("SCAN callbacks", "SCAN callback_event_groups", "SCAN callback_history"))
                   for step in steps)]


CASES: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "start-up load": callback_rows.load_open,
    "by state": lambda store: callback_rows.find(store, states=["SCHEDULED"]),
    "by service and state": lambda store: callback_rows.find(store, service="s", states=["QUEUED"]),
    "open list of a service": lambda store: callback_rows.find(store, service="s", not_state="COMPLETED"),
    "open list": lambda store: callback_rows.find(store, not_state="COMPLETED"),
    "by number": lambda store: callback_rows.find(store, customer_number="+15550000000"),
    "by id": lambda store: callback_rows.get_record(store, "c1"),
    "events of one": lambda store: event_groups.events_of(store, "c1"),
    "history of one": lambda store: history.stored(store, "c1"),
    "retention purge": lambda store: persistence.purge(store, 1.0),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_no_callback_query_scans_the_history(tmp_path: Path, case: str) -> None:
    found = await plans(tmp_path / "engine.db", CASES[case])
    assert any("callback" in sql for sql, _ in found), found
    assert full_scans(found) == []
    # by callback: ranges of the serial indexes (migration 9), none by the random id but for unserialed rows
    by_index = [step for _, steps in found for step in steps
                if "callback_event_groups" in step or "callback_history" in step]
    assert all("USING INDEX ix_callback_" in step for step in by_index), by_index


async def test_the_check_sees_a_full_scan(tmp_path: Path) -> None:
    """The test above can fail: a filter on a column no index starts with is a scan."""
    from sqlalchemy import select

    async def unindexed(store: Any) -> None:
        t = callback_rows.callbacks
        await store.fetch_all(select(t.c.id).where(t.c.expiration_time < 5))

    assert full_scans(await plans(tmp_path / "engine.db", unindexed)) != []
