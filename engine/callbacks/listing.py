"""The console's reads of the callback history: a filtered, paged list and a daily report.

Every query must cost the same with a week or years of history where an index can serve it. The
``callbacks`` table has (state, created_at) and (service, state, created_at) indexes but none on
created_at alone, so "newest first" over several states is one ordered, limited range per state
(``UNION ALL`` of them, merged by the outer ORDER BY): each part reads at most ``offset + limit``
index entries, whatever the history holds; the total counts index entries, at most
``COUNT_CAP`` of them (beyond, the answer says the total is not exact). What no index serves:

- ``reason`` (only in the record's JSON) and ``q`` (a substring of the id, the number or the
  record's JSON) test each row: they look only at the newest (oldest with ``order=oldest``)
  ``SEARCH_WINDOW`` rows per state matching the other filters, so they cost at most that many
  rows per state whatever the history; from/to reach older ones. Each row is tested once: the
  matches' ids are sorted here and only the page's records are read. ``q`` looks at the record's
  JSON text, so a key's name matches too.
- ``number`` has its own index: its rows (few per number) are read and sorted.
- the report reads every row created in its range (at most 366 days; the index gives the range).

Without a store (persistence off) every record is in memory and the same filters run over it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Integer, Select, and_, cast, func, literal, select, type_coerce, union_all

from ..storage import Store, dumps
from .records import parse_time
from .rows import callbacks
from .vocabulary import CallbackState

ALL_STATES: tuple[str, ...] = tuple(s.value for s in CallbackState)
SEARCH_WINDOW = 5_000  # rows per state a reason or q filter looks at, newest (or oldest) first
COUNT_CAP = 10_000  # a total beyond this is answered as "at least" (total_exact false)
DAY = 86400
Record = dict[str, Any]


@dataclass(frozen=True)
class CallbackFilter:
    """What the list asks for; times are epoch seconds on the engine clock (creation time)."""

    service: str | None = None
    states: tuple[str, ...] = ()  # empty: every state
    reason: str | None = None  # implies COMPLETED
    number: str | None = None
    created_from: float | None = None  # inclusive
    created_to: float | None = None  # exclusive
    q: str | None = None
    newest_first: bool = True

    def wanted_states(self) -> tuple[str, ...]:
        states = self.states or ALL_STATES
        if self.reason is not None:
            states = tuple(s for s in states if s == CallbackState.COMPLETED)
        return states


@dataclass(frozen=True)
class Page:
    records: list[Record]
    total: int
    total_exact: bool  # False: total is COUNT_CAP and there are more


@dataclass(frozen=True, order=True)
class ReportRow:
    day: str  # YYYY-MM-DD (UTC)
    service: str
    outcome: str  # the state of an open callback, the reason of a COMPLETED one
    count: int


# -- the list ----------------------------------------------------------------------------------
async def list_page(store: Store, f: CallbackFilter, limit: int, offset: int) -> Page:
    """A page of stored records (``record`` decoded) and how many match."""
    states = f.wanted_states()
    if not states:
        return Page([], 0, True)
    t = callbacks
    # One ordered range per state; a number has its own index and few rows: one part, sorted.
    groups = [states] if f.number is not None else [(state,) for state in states]
    if f.reason is not None or f.q:
        return await _windowed_page(store, f, groups, limit, offset)
    parts = [_part(store, f, group, select(t.c.id, t.c.created_at, t.c.record)).limit(offset + limit).subquery()
             for group in groups]
    merged = union_all(*(select(p.c.id, p.c.created_at, p.c.record) for p in parts)).subquery()
    page = select(merged.c.record).order_by(*_order(merged.c.created_at, merged.c.id, f.newest_first)) \
        .limit(limit).offset(offset)
    counted = union_all(*(_part(store, f, group, select(t.c.id), ordered=False) for group in groups)).subquery()
    count = select(func.count()).select_from(select(counted.c.id).limit(COUNT_CAP + 1).subquery())
    async with store.engine.connect() as conn:
        rows = (await conn.execute(page)).all()
        total = (await conn.execute(count)).scalar() or 0
    return Page([json.loads(r.record) for r in rows], min(total, COUNT_CAP), total <= COUNT_CAP)


async def _windowed_page(store: Store, f: CallbackFilter, groups: list[tuple[str, ...]], limit: int, offset: int
                         ) -> Page:
    """The filters no index serves: every match in the windows at once (at most ``SEARCH_WINDOW``
    per state), so each row is tested once for the page and the total; then the page's records."""
    t = callbacks
    matched = union_all(*(_part(store, f, group, select(t.c.id, t.c.created_at), ordered=False)
                          for group in groups)).subquery()
    async with store.engine.connect() as conn:
        found = (await conn.execute(select(matched.c.id, matched.c.created_at))).all()
        found.sort(key=lambda r: (r.created_at, r.id), reverse=f.newest_first)
        ids = [r.id for r in found[offset: offset + limit]]
        texts = dict((await conn.execute(select(t.c.id, t.c.record).where(t.c.id.in_(ids)))).all()) if ids else {}
    return Page([json.loads(texts[cid]) for cid in ids if cid in texts], len(found), True)


def _part(store: Store, f: CallbackFilter, states: tuple[str, ...], query: Select, ordered: bool = True) -> Select:
    """``query`` over the rows in ``states`` matching ``f``, newest (or oldest) first."""
    t = callbacks
    where = [t.c.state == states[0] if len(states) == 1 else t.c.state.in_(states), *_plain_conditions(f)]
    if f.reason is not None or f.q:  # no index serves these: they look at a window of rows
        window = select(t.c.id).where(*where).order_by(*_order(t.c.created_at, t.c.id, f.newest_first)) \
            .limit(SEARCH_WINDOW)
        if f.number is not None:
            window = window.with_hint(t, "INDEXED BY ix_callbacks_customer", "sqlite")
        where = [t.c.id.in_(window)]
        if f.reason is not None:
            where.append(_json_text(store, "_callback_reason") == f.reason)
        if f.q:
            pattern = "%" + escape_like(f.q) + "%"
            where.append(t.c.id.ilike(pattern, escape="\\") | t.c.customer_number.ilike(pattern, escape="\\")
                         | t.c.record.ilike(pattern, escape="\\"))
    query = query.where(*where)
    if f.number is not None:  # SQLite has no statistics to prefer it over the state index
        query = query.with_hint(t, "INDEXED BY ix_callbacks_customer", "sqlite")
    return query.order_by(*_order(t.c.created_at, t.c.id, f.newest_first)) if ordered else query


def _plain_conditions(f: CallbackFilter) -> list[ColumnElement[bool]]:
    t = callbacks
    where: list[ColumnElement[bool]] = []
    if f.service is not None:
        where.append(t.c.service == f.service)
    if f.number is not None:
        where.append(t.c.customer_number == f.number)
    if f.created_from is not None:
        where.append(t.c.created_at >= f.created_from)
    if f.created_to is not None:
        where.append(t.c.created_at < f.created_to)
    return where


def _order(created: Any, cid: Any, newest_first: bool) -> tuple[Any, Any]:
    return (created.desc(), cid.desc()) if newest_first else (created.asc(), cid.asc())


def _json_text(store: Store, field: str) -> ColumnElement[Any]:
    """A top-level text field of the stored record (SQLite's json_extract, PostgreSQL's ->>)."""
    record = cast(callbacks.c.record, JSON) if store.dialect == "postgresql" else type_coerce(callbacks.c.record, JSON)
    return record[field].as_string()


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern whose escape character is a backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_records(records: Iterable[Record], f: CallbackFilter, limit: int, offset: int) -> Page:
    """The same list over records in memory (no store)."""
    states = set(f.wanted_states())
    needle = f.q.casefold() if f.q else None
    found = []
    for r in records:
        if r["_callback_state"] not in states or (f.service is not None and r["_service_name"] != f.service):
            continue
        if f.number is not None and r["_customer_number"] != f.number:
            continue
        if f.reason is not None and r.get("_callback_reason") != f.reason:
            continue
        created = _created(r)
        if (f.created_from is not None and created < f.created_from) or \
                (f.created_to is not None and created >= f.created_to):
            continue
        if needle is not None and not any(needle in text.casefold() for text in (
                r["_id"], r["_customer_number"], dumps(r))):
            continue
        found.append((created, r["_id"], r))
    found.sort(key=lambda item: (item[0], item[1]), reverse=f.newest_first)
    return Page([r for _, _, r in found[offset: offset + limit]], len(found), True)


def _created(record: Mapping[str, Any]) -> float:
    try:
        return parse_time(record.get("_created_time"), "_created_time")
    except ValueError:
        return 0.0


# -- the report --------------------------------------------------------------------------------
async def daily_counts(store: Store, start: float, end: float, service: str | None = None) -> list[ReportRow]:
    """Callbacks created in ``[start, end)`` counted by UTC day, service and outcome."""
    t = callbacks
    # PostgreSQL rounds a float cast to an integer; SQLite truncates, the floor of created_at >= 0
    day = func.floor(t.c.created_at / DAY) if store.dialect == "postgresql" else cast(t.c.created_at / DAY, Integer)
    reason = _json_text(store, "_callback_reason")
    parts = []
    for state in ALL_STATES:
        where = [t.c.state == state, t.c.created_at >= start, t.c.created_at < end]
        if service is not None:
            where.append(t.c.service == service)
        label = func.coalesce(reason, literal(state)) if state == CallbackState.COMPLETED else literal(state)
        parts.append(select(day.label("day"), t.c.service.label("service"), label.label("outcome"))
                     .where(and_(*where)))
    rows = union_all(*parts).subquery()
    query = select(rows.c.day, rows.c.service, rows.c.outcome, func.count().label("n")) \
        .group_by(rows.c.day, rows.c.service, rows.c.outcome)
    found = await store.fetch_all(query)
    return sorted(ReportRow(_day_text(int(r["day"])), r["service"], r["outcome"], int(r["n"])) for r in found)


def count_records(records: Iterable[Record], start: float, end: float, service: str | None = None
                  ) -> list[ReportRow]:
    """The same report over records in memory (no store)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for r in records:
        created = _created(r)
        if not start <= created < end or (service is not None and r["_service_name"] != service):
            continue
        outcome = r["_callback_state"]
        if outcome == CallbackState.COMPLETED:
            outcome = r.get("_callback_reason") or outcome
        counts[(_day_text(int(created // DAY)), r["_service_name"], str(outcome))] += 1
    return sorted(ReportRow(day, svc, outcome, n) for (day, svc, outcome), n in counts.items())


def _day_text(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%d")
