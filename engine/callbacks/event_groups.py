"""A callback's status events are stored a batch at a time: one row holds the events one unit of
work recorded for one callback, in order (migration 10).

Why: a callback records about fifteen status events, and one row each was the largest part of
what the writer did per callback (two b-tree entries, a row of parameters bound and stepped). A
busy engine writes a dozen callbacks per unit and each callback's events arrive in a handful of
units, so a row now holds six or so (``bench/callback_core.py``: 6.5). Measured: SQLite's work
for a callback's events 0.034 -> 0.015 ms (a micro-benchmark of the statements alone), and the
instructions per callback of ``bench/callback_core.py`` under callgrind -5.9 %. A quiet engine
writes one event per row, as before.

Each event keeps its own id (``Store.new_id``, minted when it is recorded), time, name and
message, written as the JSON array ``[id, time, name, message]``; a row is the array of its
events, keyed by its last event's id (so the store's id sequence, seeded past the largest key,
is past every event's, and a callback's rows in key order are its events in order). Reads
expand rows back into one dict per event. The old table's name is now a view that expands the
rows the same way, so SQL written against ``callback_events`` (an operator's query, a report)
still reads one row per event.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Float, Integer, String, Table, Text, func, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..storage import Migration, Store, TableWrite, dumps, metadata
from . import serials

callback_event_groups = Table(
    "callback_event_groups", metadata,
    # its last event's id
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("callback_id", String(64), nullable=False),
    Column("callback_serial", BigInteger),  # the callback's serial; NULL: not known to the writer
    Column("created_at", Float, nullable=False),  # its first event's time
    Column("events", Text, nullable=False),  # [[id, time, name, message], ...], oldest first
)
# Indexed by (callback_serial, id), and (callback_id, id) where the serial is NULL, as migration 9
# indexed the rows of one event: made by the migration's own DDL.
INDEXES = {
    "ix_callback_event_groups_serial": "(callback_serial, id) WHERE callback_serial IS NOT NULL",
    "ix_callback_event_groups_unserialed": "(callback_id, id) WHERE callback_serial IS NULL",
}
CALLBACK_EVENT_GROUPS = TableWrite(callback_event_groups, sequenced=True)

#: An event on its way to the store: (callback id, its serial, event id, time, ``[id, time, name,
#: message]`` as JSON). The message is encoded when the event is recorded, so a value the record
#: changes afterwards is written as it was.
Pending = tuple[str, int | None, int, float, str]


def pending(callback_id: str, serial: int | None, event_id: int, at: float, name: str,
            message: dict[str, Any]) -> Pending:
    return (callback_id, serial, event_id, at, dumps([event_id, at, name, message]))


def rows(events: list[Pending]) -> list[dict[str, Any]]:
    """The rows of ``events`` (in the order recorded): one per callback, under the serial its
    events were recorded with (the first known, should the writer have forgotten it meanwhile)."""
    groups: dict[str, list[Pending]] = {}
    for event in events:
        found = groups.get(event[0])
        if found is None:
            groups[event[0]] = [event]
        else:
            found.append(event)
    return [{"id": group[-1][2], "callback_id": cid, "callback_serial": _serial(group), "created_at": group[0][3],
             "events": "[" + ",".join([e[4] for e in group]) + "]"} for cid, group in groups.items()]


def _serial(group: list[Pending]) -> int | None:
    serial = group[0][1]
    if serial is None:
        serial = next((e[1] for e in group if e[1] is not None), None)
    return serial


def _event(callback_id: str, item: list[Any]) -> dict[str, Any]:
    return {"id": item[0], "callback_id": callback_id, "created_at": item[1], "name": item[2], "data": item[3]}


def expand_pending(events: list[Pending]) -> list[dict[str, Any]]:
    """Events not yet stored, as a read returns them (``id``, ``callback_id``, ``created_at``,
    ``name``, ``data``: the message)."""
    return [_event(e[0], json.loads(e[4])) for e in events]


def expand(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored rows as their events, in the rows' order."""
    out: list[dict[str, Any]] = []
    for row in found:
        cid = row["callback_id"]
        out.extend(_event(cid, item) for item in json.loads(row["events"]))
    return out


async def events_of(store: Store, callback_id: str) -> list[dict[str, Any]]:
    """The stored status events of a callback, oldest first (two ranges of the indexes)."""
    return expand(await store.fetch_all(serials.rows_of(callback_event_groups, callback_id)))  # type: ignore[arg-type]


async def purge_of(conn: AsyncConnection, callbacks: Any, callback_ids: Any) -> int:
    """Delete the events of some callbacks (``serials.delete_of``'s arguments); how many events went."""
    t = callback_event_groups
    length = (func.json_array_length(t.c.events) if conn.dialect.name == "sqlite"
              else func.json_array_length(text("callback_event_groups.events::json")))
    count = 0
    for where in serials.halves_of(t, callbacks, callback_ids):
        found = (await conn.execute(select(func.coalesce(func.sum(length), 0)).where(*where))).scalar()
        count += int(found or 0)
    await serials.delete_of(conn, t, callbacks, callback_ids)
    return count


# -- migration 10 -------------------------------------------------------------------------------
# Each row of the old table becomes a row of one event (a message that is not valid JSON, which
# the engine never wrote, is kept as a string rather than failing the upgrade). SQLite's
# json_array writes a REAL with 15 significant digits (1733338339.1234567 became
# 1733338339.12346): the time goes in as 17, which read back give the very float.
_SQLITE_TIME = "printf('%!.17g', created_at)"
_COPY = {
    "sqlite": "INSERT INTO callback_event_groups (id, callback_id, callback_serial, created_at, events) "
              "SELECT id, callback_id, callback_serial, created_at, json_array(json_array(id, "
              f"CASE WHEN json_valid({_SQLITE_TIME}) THEN json({_SQLITE_TIME}) ELSE created_at END, name, "
              "CASE WHEN json_valid(data) THEN json(data) ELSE data END)) FROM callback_events",
    "postgresql": "INSERT INTO callback_event_groups (id, callback_id, callback_serial, created_at, events) "
                  "SELECT id, callback_id, callback_serial, created_at, "
                  "json_build_array(json_build_array(id, created_at, name, {data}))::text FROM callback_events",
}
# PostgreSQL before 16 has no IS JSON: a cast that fails is caught by a function (a subtransaction
# per row, so only when the plain cast failed).
_PG_LENIENT = ("CREATE FUNCTION pg_temp.cbe_lenient_json(t text) RETURNS json LANGUAGE plpgsql AS $$ "
               "BEGIN RETURN t::json; EXCEPTION WHEN others THEN RETURN to_json(t); END $$")
# The old table's name, read-only: one row per event, its columns as they were.
_VIEW = {
    "sqlite": "CREATE VIEW callback_events AS SELECT json_extract(e.value, '$[0]') AS id, g.callback_id AS "
              "callback_id, json_extract(e.value, '$[2]') AS name, json_extract(e.value, '$[3]') AS data, "
              "json_extract(e.value, '$[1]') AS created_at, g.callback_serial AS callback_serial "
              "FROM callback_event_groups AS g, json_each(g.events) AS e",
    "postgresql": "CREATE VIEW callback_events AS SELECT (e.value->>0)::bigint AS id, g.callback_id, "
                  "e.value->>2 AS name, (e.value->3)::text AS data, (e.value->>1)::double precision AS created_at, "
                  "g.callback_serial FROM callback_event_groups AS g "
                  "CROSS JOIN LATERAL json_array_elements(g.events::json) AS e(value)",
}


def migrate(conn: Connection) -> None:
    """Migration 10: the grouped table and its indexes; the old table's rows moved into it, the
    table dropped and a view of its name put in its place."""
    dialect = conn.dialect.name
    callback_event_groups.create(conn)
    for name, spec in INDEXES.items():
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON callback_event_groups {spec}"))
    if inspect(conn).has_table("callback_events"):  # a store opened with the callbacks' schema has it
        if dialect == "postgresql":
            _copy_postgresql(conn)
        else:
            conn.execute(text(_COPY[dialect]))
        conn.execute(text("DROP TABLE callback_events"))
    conn.execute(text(_VIEW[dialect]))


def _copy_postgresql(conn: Connection) -> None:
    try:
        with conn.begin_nested():
            conn.execute(text(_COPY["postgresql"].format(data="data::json")))
    except DBAPIError:  # a message that is not JSON (the engine never wrote one)
        conn.execute(text(_PG_LENIENT))
        conn.execute(text(_COPY["postgresql"].format(data="pg_temp.cbe_lenient_json(data)")))
        conn.execute(text("DROP FUNCTION pg_temp.cbe_lenient_json(text)"))


MIGRATION = Migration(10, "status events stored a batch at a time: one row per callback per unit of work "
                          "(the old table's name is a view of one row per event)", migrate)
