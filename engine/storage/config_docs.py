"""Shared configuration of a cluster (issue 14): the documents every node serves, in the database.

A node of a cluster keeps no configuration of its own: services, business hours, transaction
lists and CALLBACK_SETTINGS are rows of ``config_documents`` (one per kind and name, the body as
text), the current version of each flow is a row of ``flow_current``, API keys are ``api_keys``
and console sign-ins ``console_sessions``. Every change raises the row's revision and sends
``cbe_config`` (``{"kind", "name", "rev"}``) in its own transaction, so the other nodes re-read
what changed once it has committed.

The files of ``config/`` and ``scxml/`` are imported, not served: a file is imported only when its
hash differs from the ``source_hash`` of the row it was last imported into, so a node starting
with stale files never undoes a change made through the API, and a file edited since is taken.

Storage knows no domain: bodies are opaque text here; the domains validate them. The tables are
made on both dialects (migration 8) and read only by a cluster on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Column, Connection, Float, Index, String, Table, Text, inspect, text

from .schema import metadata

if TYPE_CHECKING:  # the store's migrations import this module
    from .store import Store

CHANNEL = "cbe_config"

config_documents = Table(
    "config_documents", metadata,
    Column("kind", String(32), primary_key=True),  # service, business_hours, transaction_list, ...
    Column("name", String(200), primary_key=True),
    Column("body", Text, nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("source_hash", String(64)),  # the hash of the file last imported into this row
    Column("revision", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(200), nullable=False),
)

# Which stored version (``flow_versions``, the sessions' table) new sessions of a flow start on.
flow_current = Table(
    "flow_current", metadata,
    Column("name", String(200), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("source_hash", String(64)),
    Column("revision", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(200), nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("created", Float, nullable=False),
    Column("rotated", Float),
    Column("services", Text),  # a JSON list, or NULL: every service
)

console_sessions = Table(
    "console_sessions", metadata,
    Column("token_sha256", String(64), primary_key=True),  # of the cookie's token, never the token
    Column("key_name", String(64), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("signed_in", Float, nullable=False),
    Column("last_used", Float, nullable=False),
)
Index("ix_console_sessions_last_used", console_sessions.c.last_used)


def migrate(conn: Connection) -> None:
    """Migration 8: the tables above; on PostgreSQL also one number per version of a flow (the
    versions a cluster mints under a lock; a single process minted them in memory)."""
    for table in (config_documents, flow_current, api_keys, console_sessions):
        table.create(conn)
    if conn.dialect.name == "postgresql" and inspect(conn).has_table("flow_versions"):
        conn.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS ux_flow_versions_flow_version "
                          "ON flow_versions (name, version) WHERE kind = 'flow'"))


def content_hash(body: str | bytes) -> str:
    return hashlib.sha256(body.encode("utf-8") if isinstance(body, str) else body).hexdigest()


@dataclass(frozen=True)
class ConfigDoc:
    kind: str
    name: str
    body: str
    body_hash: str
    source_hash: str | None
    revision: int
    updated_at: float
    updated_by: str


def notice(kind: str, name: str, revision: int) -> str:
    """The ``cbe_config`` payload for a change (far below NOTIFY's 8000 bytes: names are short)."""
    return json.dumps({"kind": kind, "name": name, "rev": revision}, separators=(",", ":"))


def read_notice(payload: str) -> tuple[str, str, int] | None:
    """``(kind, name, rev)`` of a ``cbe_config`` payload, or None for one this engine did not send."""
    try:
        found = json.loads(payload)
        return str(found["kind"]), str(found["name"]), int(found["rev"])
    except (ValueError, TypeError, KeyError):
        return None


_UPSERT = """
INSERT INTO config_documents AS d (kind, name, body, body_hash, source_hash, revision, updated_at, updated_by)
VALUES ($1, $2, $3, $4, $5, 1, extract(epoch from clock_timestamp()), $6)
ON CONFLICT (kind, name) DO UPDATE SET body = excluded.body, body_hash = excluded.body_hash,
    source_hash = COALESCE(excluded.source_hash, d.source_hash), revision = d.revision + 1,
    updated_at = excluded.updated_at, updated_by = excluded.updated_by
"""
# An API write: the row keeps the hash of the file it was imported from.
_SAVE = _UPSERT + " RETURNING revision, updated_at"
# An import: only a file changed since its last import, and only when it says something new.
_IMPORT = _UPSERT + """ WHERE d.source_hash IS DISTINCT FROM excluded.source_hash
    AND d.body_hash IS DISTINCT FROM excluded.body_hash RETURNING revision, updated_at"""
_NOTIFY = "SELECT pg_notify($1, $2)"


def _row(found: Any) -> ConfigDoc:
    m = found._mapping
    return ConfigDoc(m["kind"], m["name"], m["body"], m["body_hash"], m["source_hash"], int(m["revision"]),
                     float(m["updated_at"]), m["updated_by"])


async def read(store: Store, kind: str, name: str) -> ConfigDoc | None:
    async with store.engine.connect() as conn:
        found = (await conn.execute(config_documents.select().where(
            config_documents.c.kind == kind, config_documents.c.name == name))).first()
    return _row(found) if found is not None else None


async def read_kind(store: Store, kind: str) -> list[ConfigDoc]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(config_documents.select().where(config_documents.c.kind == kind)
                                  .order_by(config_documents.c.name))
        return [_row(r) for r in rows]


async def revisions(store: Store) -> dict[tuple[str, str], int]:
    """Every document's revision and every flow's (as kind ``flow``): what a node compares after
    its listener reconnected, to re-read what changed while it heard nothing."""
    async with store.engine.connect() as conn:
        docs = await conn.execute(text("SELECT kind, name, revision FROM config_documents"))
        found = {(k, n): int(r) for k, n, r in docs}
        flows = await conn.execute(text("SELECT name, revision FROM flow_current"))
        found.update({("flow", n): int(r) for n, r in flows})
    return found


async def _upsert(store: Store, sql: str, kind: str, name: str, body: str, source_hash: str | None,
                  node: str) -> ConfigDoc | None:
    body_hash = content_hash(body)
    async with store.engine.begin() as conn:
        found = (await conn.exec_driver_sql(sql, (kind, name, body, body_hash, source_hash, node))).first()
        if found is None:
            return None
        revision, updated_at = int(found[0]), float(found[1])
        await conn.exec_driver_sql(_NOTIFY, (CHANNEL, notice(kind, name, revision)))
    return ConfigDoc(kind, name, body, body_hash, source_hash, revision, updated_at, node)


async def save(store: Store, kind: str, name: str, body: str, node: str) -> ConfigDoc:
    """Store a document (revision + 1) and tell every node, in one transaction. Raises the
    driver's error when the database refuses: nothing is stored then."""
    doc = await _upsert(store, _SAVE, kind, name, body, None, node)
    assert doc is not None
    return doc


async def import_source(store: Store, kind: str, name: str, body: str, source_hash: str,
                        node: str) -> ConfigDoc | None:
    """Store a file's document unless that very file was imported before (or the row already says
    the same): the stored document, or None when nothing changed."""
    return await _upsert(store, _IMPORT, kind, name, body, source_hash, node)


async def notify(store: Store, kind: str, name: str, revision: int) -> None:
    """A change stored elsewhere (sealed engine values, keys) announced on ``cbe_config``."""
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql(_NOTIFY, (CHANNEL, notice(kind, name, revision)))



async def current_flows(store: Store, all_versions: bool = False) -> list[tuple[str, int, str, bool]]:
    """``(name, version, text, current)`` of every flow's current version (``all_versions``: of
    every version of a flow that has a current one), for an export."""
    sql = ("SELECT v.name, v.version, v.text, v.hash = f.hash FROM flow_versions v JOIN flow_current f "
           "ON f.name = v.name WHERE v.kind = 'flow'" + ("" if all_versions else " AND v.hash = f.hash") +
           " ORDER BY v.name, v.version")
    async with store.engine.connect() as conn:
        return [(n, int(v), t, bool(c)) for n, v, t, c in await conn.exec_driver_sql(sql)]
