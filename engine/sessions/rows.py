"""The sessions domain's tables and queries: flow versions, session snapshots, inbox, outbox.

Only this domain decodes a stored snapshot: the API asks here for what a stored session says.
"""

from __future__ import annotations

import heapq
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..jsonable import jsonable
from ..scxml.snapshot import decode_state
from ..storage import SLOTS, Fence, Migration, Schema, Store, TableWrite, UnitOfWork, creates, metadata
from ..storage import fence as fencing
from ..storage.cluster_tables import inbox_sources, session_writes, with_partition

# Every document version any session ran or runs: flows, and documents invoked by them.
flow_versions = Table(
    "flow_versions", metadata,
    Column("hash", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # "flow" or "child"
    Column("text", Text, nullable=False),
    Column("base_dir", Text),
    Column("created_at", Float, nullable=False),
)
Index("ix_flow_versions_name", flow_versions.c.name, flow_versions.c.version)

sessions = Table(
    "sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("flow", String(200), nullable=False),
    Column("flow_hash", String(64), nullable=False),
    Column("flow_version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("parent_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("snapshot", Text, nullable=False),
)
Index("ix_sessions_status", sessions.c.status, sessions.c.flow)

# Events on their way to a session: written with the sender's snapshot, deleted with the
# snapshot of the receiver that holds (or has processed) them.
inbox = Table(
    "inbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("session_id", String(64), nullable=False),
    Column("event", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Effects leaving the engine (HTTP sends, notifications): written with the snapshot of the
# session that caused them, deleted once carried out.
outbox = Table(
    "outbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("session_id", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# A document version never changes (its key is its content hash): a second write keeps the first.
FLOW_VERSIONS = TableWrite(flow_versions, keep_existing=True)
# A snapshot replaces the last one; flow, parent and creation time stay as first written.
SESSIONS = TableWrite(sessions, replace=("status", "updated_at", "snapshot"))
INBOX = TableWrite(inbox, sequenced=True)
OUTBOX = TableWrite(outbox, sequenced=True)

# The same tables as a cluster node writes them on PostgreSQL (issue 14): each row with its
# partition; a snapshot with the epoch its writer held the partition at (an upsert never lets it go
# back) and its sequence number; an inbox row with the epoch it was taken at (None: handed over,
# waiting for its partition's holder to take it).
CLUSTER_SESSIONS = TableWrite(with_partition(sessions, Column("epoch", BigInteger, nullable=False),
                                             Column("seq", BigInteger, nullable=False)),
                              replace=("status", "updated_at", "snapshot", "epoch", "seq"), guard="epoch")
CLUSTER_INBOX = TableWrite(with_partition(inbox, Column("taken_epoch", BigInteger)))
CLUSTER_OUTBOX = TableWrite(with_partition(outbox))
# Every snapshot write, when cluster_audit is on: numbered by the database's own sequence (in the
# order of the commits of one session's writes: a partition's next holder writes only after the
# claim that waited for the last write of the one before), so this write names no id.
SESSION_WRITES = TableWrite(Table("session_writes", MetaData(), *(
    Column(c.name, c.type, primary_key=c.name == "session_id") for c in session_writes.c if c.name != "id")))

SCHEMA = Schema("sessions", (Migration(1, "flow versions, sessions, inbox, outbox",
                                       creates(flow_versions, sessions, inbox, outbox)),),
                (FLOW_VERSIONS, SESSIONS, INBOX, OUTBOX))

RUNNING = "running"
STATUSES = (RUNNING, "finished", "cancelled", "failed")


# -- flows -------------------------------------------------------------------------------------
async def load_flow_versions(store: Store) -> list[dict[str, Any]]:
    return await store.rows_where(flow_versions, order_by=(flow_versions.c.name, flow_versions.c.version))


async def get_flow_version(store: Store, content_hash: str) -> dict[str, Any] | None:
    return await store.fetch_one(select(flow_versions).where(flow_versions.c.hash == content_hash))


async def save_flow_version(store: Store, row: dict[str, Any]) -> None:
    unit = UnitOfWork()
    unit.add(FLOW_VERSIONS, [row])
    await store.write(unit)


# -- sessions ----------------------------------------------------------------------------------
async def load_running(store: Store) -> list[dict[str, Any]]:
    return await store.rows_where(sessions, sessions.c.status == RUNNING)


async def load_inbox(store: Store) -> list[dict[str, Any]]:
    return await store.rows_where(inbox, order_by=(inbox.c.id,))


async def load_outbox(store: Store) -> list[dict[str, Any]]:
    return await store.rows_where(outbox, order_by=(outbox.c.id,))


async def load_running_in(store: Store, parts: list[int]) -> list[dict[str, Any]]:
    """The running sessions of ``parts`` (a cluster node adopting them), with partition, epoch, seq."""
    t = CLUSTER_SESSIONS.table
    return await store.rows_where(t, t.c.status == RUNNING, t.c.part.in_(parts))


async def load_outbox_in(store: Store, parts: list[int]) -> list[dict[str, Any]]:
    t = CLUSTER_OUTBOX.table
    return await store.rows_where(t, t.c.part.in_(parts), order_by=(t.c.id,))


# Events for sessions of the partitions this node holds that it has not taken at the epoch it holds
# them (handed over by other nodes, or left by an earlier holder): one statement, whose join with
# the partitions' owners is its own fence. Each row comes back once per epoch.
_TAKE = """
UPDATE inbox i SET taken_epoch = p.epoch FROM cluster_partitions p
WHERE i.part = p.id AND p.owner = $1 AND p.owner_incarnation = $2 AND p.id = ANY($3::int[])
  AND (i.taken_epoch IS NULL OR i.taken_epoch < p.epoch)
RETURNING i.id, i.part, i.session_id, i.event, i.created_at
"""


async def take_inbox(store: Store, node: str, incarnation: str, parts: list[int]) -> list[dict[str, Any]]:
    """Take the inbox rows of ``parts`` not yet taken at their held epoch, oldest first
    (``oldest_first``)."""
    async with store.engine.begin() as conn:
        found = (await conn.exec_driver_sql(_TAKE, (node, incarnation, parts))).all()
    return [{"id": r[0], "part": r[1], "session_id": r[2], "event": r[3]} for r in oldest_first(found)]


def oldest_first(found: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """Inbox rows ``(id, ..., created_at)`` in the order they were made. Not by id alone: rows come
    from several nodes, each minting ids in a slot of its own at its own pace, so a row a busy node
    made first can have a larger id than one a quieter node made after it (a dead holder's
    ``route.done`` and the ``call.ended`` handed over after it: taken first, ``call.ended`` is
    discarded by the flow, which then waits for ever). So: each slot's rows in id order (exact
    within a node, whatever its clock does), the slots merged by the time each row was made
    (the nodes' clocks, which must agree closer than one session's events follow each other)."""
    by_slot: dict[int, list[Sequence[Any]]] = defaultdict(list)
    for row in sorted(found, key=lambda r: r[0]):
        by_slot[row[0] % SLOTS].append(row)
    return list(heapq.merge(*by_slot.values(), key=lambda r: r[-1]))


# An event from outside the engine that names where it came from (a platform event's number) is
# handed over once: a copy sent again, to this node or another, inserts nothing.
_SOURCED = """
WITH s AS (INSERT INTO inbox_sources (source, at) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING source)
INSERT INTO inbox (id, session_id, event, created_at, part, taken_epoch) SELECT $3, $4, $5, $6, $7, NULL FROM s
"""


#: How long a source is remembered: far longer than any copy is sent again (the platform sends
#: an unacked event again within seconds, and a new platform incarnation numbers afresh).
SOURCES_KEPT_SECONDS = 86400.0


async def forget_sources(store: Store, before: float) -> int:
    """Drop the sources recorded before ``before`` (epoch seconds): one row per platform event
    and handoff of a cluster, which would otherwise grow for ever; how many went."""
    async with store.engine.begin() as conn:
        done = await conn.execute(delete(inbox_sources).where(inbox_sources.c.at < before))
    return done.rowcount or 0


async def hand_over_sourced(store: Store, fence: Fence, rows: list[tuple[str, dict[str, Any]]],
                            notify: list[tuple[str, str]]) -> None:
    """Insert handed-over inbox rows, each at most once per source, while this node's lease holds."""
    async with store.engine.begin() as conn:
        await fencing.check(conn, fence)
        await conn.exec_driver_sql(_SOURCED, [(source, r["created_at"], r["id"], r["session_id"], r["event"],
                                               r["created_at"], r["part"]) for source, r in rows])
        await conn.exec_driver_sql("SELECT pg_notify($1, $2)", notify)


async def get_session(store: Store, session_id: str) -> dict[str, Any] | None:
    return await store.fetch_one(select(sessions).where(sessions.c.id == session_id))


async def stored_status(store: Store, session_id: str) -> str | None:
    """The status of a stored session, without reading its snapshot."""
    found = await store.fetch_one(select(sessions.c.status).where(sessions.c.id == session_id))
    return found["status"] if found else None


async def describe_stored(store: Store, session_id: str) -> dict[str, Any] | None:
    """What the session query says of a session known only by its stored row."""
    row = await get_session(store, session_id)
    return describe_row(row) if row is not None else None


def describe_row(row: dict[str, Any]) -> dict[str, Any]:
    """What ``SessionManager.describe`` says, from a stored row (its snapshot decoded)."""
    state = decode_state(json.loads(row["snapshot"]))
    return {
        "sessionid": row["id"], "flow": row["flow"], "version": row["flow_version"],
        "status": row["status"], "active_states": state.final_ids or state.configuration,
        "final_state": None, "datamodel": jsonable(state.data), "error": state.error,
        "parent": row["parent_id"], "persistent": True, "created_at": row["created_at"],
    }


async def list_sessions(store: Store, *, flow: str | None = None, status: str | None = None,
                        parent: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Stored sessions as the session list shows them (oldest first; snapshots are not read)."""
    t = sessions
    query = select(t.c.id, t.c.flow, t.c.flow_version, t.c.status, t.c.parent_id, t.c.created_at, t.c.updated_at)
    if flow is not None:
        query = query.where(t.c.flow == flow)
    if status is not None:
        query = query.where(t.c.status == status)
    if parent is not None:
        query = query.where(t.c.parent_id == parent)
    query = query.order_by(t.c.created_at, t.c.id).limit(limit).offset(offset)
    return [{"sessionid": r["id"], "flow": r["flow"], "version": r["flow_version"], "status": r["status"],
             "parent": r["parent_id"], "created_at": r["created_at"], "updated_at": r["updated_at"]}
            for r in await store.fetch_all(query)]


async def count_by_version(store: Store, flow: str) -> dict[int, dict[str, int]]:
    """Stored sessions of ``flow`` counted per version: ``{version: {status: n}}``. Every status is
    named so the (status, flow) index gives the rows; it reads the flow's stored sessions (ended
    ones until the retention purge), no snapshot."""
    t = sessions
    query = select(t.c.flow_version, t.c.status, func.count().label("n")) \
        .where(t.c.status.in_(STATUSES), t.c.flow == flow).group_by(t.c.flow_version, t.c.status)
    counts: dict[int, dict[str, int]] = {}
    for row in await store.fetch_all(query):
        counts.setdefault(int(row["flow_version"]), {})[row["status"]] = int(row["n"])
    return counts


# -- retention ---------------------------------------------------------------------------------
async def purge(conn: AsyncConnection, cutoff: float) -> dict[str, int]:
    """Ended sessions last written before ``cutoff``; running ones are never touched."""
    gone = await conn.execute(delete(sessions).where(sessions.c.status != RUNNING, sessions.c.updated_at < cutoff))
    return {"sessions": gone.rowcount}
