"""The sessions domain's tables and queries: flow versions, session snapshots, inbox, outbox.

Only this domain decodes a stored snapshot: the API asks here for what a stored session says.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..jsonable import jsonable
from ..scxml.snapshot import decode_state
from ..storage import Migration, Schema, Store, TableWrite, UnitOfWork, creates, metadata

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

SCHEMA = Schema("sessions", (Migration(1, "flow versions, sessions, inbox, outbox",
                                       creates(flow_versions, sessions, inbox, outbox)),),
                (FLOW_VERSIONS, SESSIONS, INBOX, OUTBOX))

RUNNING = "running"
STATUSES = (RUNNING, "finished", "cancelled", "failed")


# -- flows -------------------------------------------------------------------------------------
async def load_flow_versions(store: Store) -> list[dict[str, Any]]:
    return await store.rows_where(flow_versions, order_by=(flow_versions.c.name, flow_versions.c.version))


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
