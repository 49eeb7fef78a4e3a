"""The callbacks domain's tables, row mapping and queries: records and their status events
(stored a batch at a time: ``event_groups``)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    column,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ..storage import Migration, Schema, Store, TableWrite, creates, dumps, metadata
from ..storage.cluster_tables import with_partition
from . import event_groups, history, serial_migration, serials
from .records import parse_time
from .vocabulary import CallbackState

# Callback records (GMS format in ``record``; the columns are what queries filter on).
callbacks = Table(
    "callbacks", metadata,
    Column("id", String(64), primary_key=True),
    Column("service", String(200), nullable=False),
    Column("state", String(16), nullable=False),
    Column("customer_number", String(32), nullable=False),
    Column("desired_time", Float, nullable=False),
    Column("expiration_time", Float, nullable=False),
    Column("session_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("record", Text, nullable=False),
    Column("serial", BigInteger),  # given at create, grows with time: the key of its events (migration 9)
)
Index("ix_callbacks_service_state", callbacks.c.service, callbacks.c.state)
Index("ix_callbacks_customer", callbacks.c.customer_number)
Index("ix_callbacks_desired", callbacks.c.service, callbacks.c.desired_time)

# Status events recorded per callback (flow events and service events), one row each: the table of
# migrations 2 and 9. Migration 10 moved its rows into ``event_groups.callback_event_groups`` and
# left a view of one row per event under this name; the engine neither writes nor reads it.
callback_events = Table(
    "callback_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("callback_id", String(64), nullable=False),
    Column("name", String(100), nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("callback_serial", BigInteger),  # the callback's serial; NULL: not known to the writer
)
# Indexed by (callback_serial, id), and (callback_id, id) where the serial is NULL: migration 9.

# Migration 5: what a query, the start-up load and the purge look for costs the same with a large
# history (every query is a range of one of these, ordered like the list answers). The indexes
# are made by the migration's own DDL, not declared on the table, so migration 2 stays what it was.
# (service, state, created_at) supersedes the (service, state) index of migration 2.
FLAT_INDEXES = {
    "ix_callbacks_state_created": ("state", "created_at"),
    "ix_callbacks_service_state_created": ("service", "state", "created_at"),
    "ix_callbacks_state_updated": ("state", "updated_at"),
}
SUPERSEDED_INDEXES = ("ix_callbacks_service_state",)


def _flat_indexes(conn: Connection) -> None:
    for name, columns in FLAT_INDEXES.items():
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON callbacks ({', '.join(columns)})"))
    for name in SUPERSEDED_INDEXES:
        conn.execute(text(f"DROP INDEX IF EXISTS {name}"))


# A record's service, number and creation time never change; the rest follows the record.
CALLBACKS = TableWrite(callbacks, replace=("state", "desired_time", "expiration_time", "session_id",
                                           "updated_at", "record"))
#: The same write in a cluster: each row also carries its callback's partition (``part``).
CLUSTER_CALLBACKS = TableWrite(with_partition(callbacks), replace=CALLBACKS.replace)
PART = column("part", Integer)  # the PostgreSQL-only partition column (migration 7)

SCHEMA = Schema("callbacks", (Migration(2, "callback records and their status events",
                                        creates(callbacks, callback_events)),
                                Migration(5, "callback indexes by state, creation and update time",
                                          _flat_indexes),
                                history.MIGRATION,
                                Migration(9, "status events and history indexed by their callback's serial, "
                                             "which grows with time (the random callback id dirtied a "
                                             "random index page per callback in every commit)",
                                          serial_migration.migrate),
                                event_groups.MIGRATION),
                (CALLBACKS, event_groups.CALLBACK_EVENT_GROUPS, history.CALLBACK_HISTORY))
#: Every state a record can be in but COMPLETED: "not COMPLETED" is a range of the state indexes.
OPEN_STATES = tuple(s.value for s in CallbackState if s != CallbackState.COMPLETED)


def record_row(record: dict[str, Any], serial: int | None = None) -> dict[str, Any]:
    """The stored row of a record: the record as JSON, and the columns queries filter on.
    ``serial``: the callback's (``CallbackSerials``), written by its first row and kept after (a
    callback stored without one has its events found through the unserialed indexes)."""
    return {
        "id": record["_id"], "service": record["_service_name"], "state": record["_callback_state"],
        "customer_number": record["_customer_number"],
        "desired_time": parse_time(record["_desired_time"], ""),
        "expiration_time": parse_time(record["_expiration_time"], ""),
        "session_id": record.get("_ors_session_id"),
        "created_at": parse_time(record["_created_time"], ""),
        "updated_at": time.time(), "record": dumps(record), "serial": serial,
    }


#: Record fields whose values repeat across records (a handful of services, queues, states).
_SHARED_VALUES = ("_service_name", "_callback_state", "_call_direction", "_urs_virtual_queue", "_device_os",
                  "_status_notification_type", "_status_notification_provider", "_status_notification_language")
_DECODE_CHUNK = 2000


async def load_open(store: Store, partitions: list[int] | None = None,
                    known: serials.CallbackSerials | None = None) -> list[dict[str, Any]]:
    """Every record not yet COMPLETED (decoded); only the open rows are read, however long the history.

    Tens of thousands of records stay in memory for as long as they wait: decoded one JSON array
    per chunk, the records share one string per key (the decoder reuses the keys it has seen in
    one document), and the values that repeat across records are interned: about 1 KiB less per
    record than decoding each on its own, and faster. ``partitions``: only theirs (a cluster node
    adopting partitions reads them over the ``(part, state)`` index). ``known`` learns their serials."""
    query = select(callbacks.c.id, callbacks.c.serial, callbacks.c.record).where(callbacks.c.state.in_(OPEN_STATES))
    if partitions is not None:
        query = query.where(PART.in_(partitions))
    found = await store.fetch_all(query)
    if known is not None:
        for row in found:
            known.learn(row["id"], row["serial"])
    texts = [r["record"] for r in found]
    records: list[dict[str, Any]] = []
    for start in range(0, len(texts), _DECODE_CHUNK):
        records.extend(json.loads("[" + ",".join(texts[start:start + _DECODE_CHUNK]) + "]"))
    intern = sys.intern
    for record in records:
        for key in _SHARED_VALUES:
            value = record.get(key)
            if type(value) is str:
                record[key] = intern(value)
    return records


async def get_record(store: Store, callback_id: str) -> dict[str, Any] | None:
    found = await store.fetch_one(select(callbacks.c.record).where(callbacks.c.id == callback_id))
    return json.loads(found["record"]) if found else None


async def find(store: Store, *, service: str | None = None, states: list[str] | None = None,
               not_state: str | None = None, customer_number: str | None = None,
               limit: int = 1000) -> list[dict[str, Any]]:
    """Stored rows (oldest first) matching the columns given; ``record`` is still JSON text."""
    t = callbacks
    query = select(t)
    if service is not None:
        query = query.where(t.c.service == service)
    if states:
        query = query.where(t.c.state.in_(states))
    if not_state is not None:
        others = [s.value for s in CallbackState if s != not_state]
        if len(others) < len(CallbackState):  # a known state: the others, a range of the index
            query = query.where(t.c.state.in_(others))
        else:
            query = query.where(t.c.state != not_state)
    if customer_number is not None:
        query = query.where(t.c.customer_number == customer_number)
    return await store.fetch_all(query.order_by(t.c.created_at).limit(limit))


async def count_in_state(store: Store, service: str, state: str, skip: list[str]) -> int:
    """Stored records of ``service`` in ``state``, but those in ``skip`` (over the
    ``(service, state, created_at)`` index): a cluster's queue limit counts every node's."""
    t = callbacks
    query = select(func.count().label("n")).select_from(t).where(t.c.service == service, t.c.state == state)
    if skip:
        query = query.where(t.c.id.not_in(skip))
    found = await store.fetch_one(query)
    return int(found["n"]) if found else 0


async def scheduled_per_bucket(store: Store, service: str, start: float, end: float, size: float,
                               skip: list[str]) -> dict[int, int]:
    """Stored SCHEDULED records of ``service`` with a desired time in ``[start, end)``, counted per
    bucket of ``size`` seconds (bucket number -> count), but those in ``skip`` (over the
    ``(service, desired_time)`` index): a cluster's capacity counts every node's."""
    t = callbacks
    bucket = func.floor(t.c.desired_time / size).label("bucket")
    query = (select(bucket, func.count().label("n")).select_from(t)
             .where(t.c.service == service, t.c.state == CallbackState.SCHEDULED.value,
                    t.c.desired_time >= start, t.c.desired_time < end).group_by(bucket))
    if skip:
        query = query.where(t.c.id.not_in(skip))
    return {int(r["bucket"]): int(r["n"]) for r in await store.fetch_all(query)}


async def is_session_of_callback(store: Store, session_id: str) -> bool:
    """Whether any stored callback (of any node) is run by ``session_id`` (``callbacks(session_id)``)."""
    t = callbacks
    return await store.fetch_one(select(t.c.id).where(t.c.session_id == session_id).limit(1)) is not None


async def purge(conn: AsyncConnection, cutoff: float) -> dict[str, int]:
    """Callbacks COMPLETED before ``cutoff``, with their recorded events and history; open ones stay."""
    done = (callbacks.c.state == CallbackState.COMPLETED, callbacks.c.updated_at < cutoff)
    their_serials, their_ids = select(callbacks.c.serial).where(*done), select(callbacks.c.id).where(*done)
    await history.purge_of(conn, their_serials, their_ids)
    events = await event_groups.purge_of(conn, their_serials, their_ids)
    records = await conn.execute(delete(callbacks).where(*done))
    return {"callbacks": records.rowcount, "callback_events": events}
