"""The console's live views read from the database, for a cluster node (issue 14).

A node keeps in memory only the callbacks of the partitions it holds, so its live indexes
(``live_indexes``) see a part of the cluster. ``GET /admin/queues`` and ``GET /admin/call-ins``
must show every node's callbacks whichever node answers, so in a cluster they read the
``callbacks`` table (PostgreSQL); a single engine keeps answering from memory alone.

Every read is bounded, whatever the history holds:

- the waiting callbacks are the rows QUEUED or ROUTING (a range of the ``(state, created_at)``
  index per state), oldest first, at most ``WAITING_CAP`` of them; only the columns shown and two
  fields of the record's JSON (its queue and submission time) come back. With more than that,
  the counts per queue come from a second query that returns one row per queue;
- the call-in records are the open rows whose JSON holds ``_access_code`` (a substring test
  first, which is cheap, then the JSON field): the total counts at most ``CALL_INS_COUNT_CAP``
  of them and the page reads ``offset + limit`` of them, newest first; only the page's records
  are decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, ColumnElement, cast, func, literal, select
from sqlalchemy.exc import SQLAlchemyError

from ..callbacks.rows import OPEN_STATES, callbacks
from ..storage import StorageUnavailable, Store
from .live_indexes import IN_QUEUE

WAITING_CAP = 10_000  # waiting rows read per view; beyond, the counts per queue come from a count query
CALL_INS_COUNT_CAP = 10_000  # call-in rows counted at most (the total says "at least" beyond)
_IN_QUEUE = tuple(state.value for state in IN_QUEUE)
_CODE_KEY = '"_access_code"'  # how the key appears in a record's compact JSON (keys are never escaped)


@dataclass(frozen=True)
class WaitingRow:
    """A stored callback waiting in a virtual queue: what the queue view shows of it."""

    id: str
    service: str
    number: str
    state: str
    session_id: str | None
    queue: str | None
    submitted: str | None


def _field(name: str) -> ColumnElement[Any]:
    """A top-level field of the stored record as text (PostgreSQL's ``->>``)."""
    return cast(callbacks.c.record, JSON)[name].as_string()


async def waiting_rows(store: Store, cap: int | None = None) -> tuple[list[WaitingRow], bool]:
    """The stored callbacks QUEUED or ROUTING, oldest first, at most ``cap`` (``WAITING_CAP``);
    and whether there were more (then the counts per queue must come from ``waiting_counts``)."""
    cap = WAITING_CAP if cap is None else cap
    t = callbacks
    query = (select(t.c.id, t.c.service, t.c.customer_number, t.c.state, t.c.session_id,
                    _field("_urs_virtual_queue").label("queue"), _field("_submitted_time").label("submitted"))
             .where(t.c.state.in_(_IN_QUEUE)).order_by(t.c.created_at, t.c.id).limit(cap + 1))
    rows = await _read(store, query, "the callbacks waiting in the queues")
    found = [WaitingRow(r["id"], r["service"], r["customer_number"], r["state"], r["session_id"], r["queue"],
                        r["submitted"]) for r in rows[:cap]]
    return found, len(rows) > cap


async def waiting_counts(store: Store) -> dict[str, int]:
    """The stored callbacks QUEUED or ROUTING per virtual queue (one row per queue comes back)."""
    queue = _field("_urs_virtual_queue")
    query = (select(queue.label("queue"), func.count().label("n")).select_from(callbacks)
             .where(callbacks.c.state.in_(_IN_QUEUE)).group_by(queue))
    rows = await _read(store, query, "the number of callbacks waiting per queue")
    return {r["queue"]: int(r["n"]) for r in rows if r["queue"] is not None}


def _carries_code() -> list[ColumnElement[bool]]:
    t = callbacks
    return [t.c.state.in_(OPEN_STATES), func.strpos(t.c.record, literal(_CODE_KEY)) > 0,
            _field("_access_code").not_in(("", "false", "0"))]


async def call_in_total(store: Store, cap: int | None = None) -> int:
    """How many stored open callbacks carry an access code, counting at most ``cap``
    (``CALL_INS_COUNT_CAP``)."""
    cap = CALL_INS_COUNT_CAP if cap is None else cap
    found = select(literal(1).label("one")).select_from(callbacks).where(*_carries_code()).limit(cap).subquery()
    rows = await _read(store, select(func.count().label("n")).select_from(found), "the call-in records")
    return int(rows[0]["n"]) if rows else 0


async def call_in_page(store: Store, limit: int, offset: int) -> list[dict[str, Any]]:
    """The stored open callbacks carrying an access code, newest first: ``limit`` of them after
    ``offset`` (decoded)."""
    t = callbacks
    query = (select(t.c.record).where(*_carries_code()).order_by(t.c.created_at.desc(), t.c.id.desc())
             .limit(limit).offset(offset))
    return [json.loads(r["record"]) for r in await _read(store, query, "the call-in records")]


async def _read(store: Store, query: Any, what: str) -> list[dict[str, Any]]:
    try:
        return await store.fetch_all(query)
    except (SQLAlchemyError, OSError) as e:
        raise StorageUnavailable(f"cannot read {what}: {type(e).__name__}") from e
