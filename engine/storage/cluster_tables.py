"""The tables of a cluster on PostgreSQL (issue 14), storage's own, and the migration that adds
them with the partition columns of the domains' tables.

A node leases partitions (``engine.ids.PARTITIONS``), not sessions: ``cluster_nodes`` holds each
node's lease, ``cluster_partitions`` who holds which partition at which epoch, ``partition_claims``
every claim ever made (the epochs of a partition strictly increase), ``session_writes`` every
snapshot write when ``cluster_audit`` is on, and ``inbox_sources`` the platform events already
accepted. Every time is the database's clock, in epoch seconds.

The migration makes the same tables on SQLite, where nothing reads them: a SQLite engine is one
process. The columns it adds to the domains' tables, and their indexes, are PostgreSQL's only: on
SQLite the domains' tables stay exactly as they were (an index there would cost every write and
serve no query; a tool inserting whole rows by position keeps working). The SQL spells the
partition column ``part`` (``PARTITION`` is a keyword of window syntax).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)

from ..ids import PARTITIONS, partition_of, partition_of_ordering_key
from .schema import metadata

_ID = BigInteger().with_variant(Integer, "sqlite")  # an autoincrementing key on both

cluster_nodes = Table(
    "cluster_nodes", metadata,
    Column("name", String(200), primary_key=True),
    Column("incarnation", String(32), nullable=False),  # new at every start: a restart fences the old one
    Column("slot", Integer, unique=True),  # this node's share of the id sequence (Store.new_id)
    Column("internal_url", Text),
    Column("platform", Text),
    Column("version", Text),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

cluster_partitions = Table(
    "cluster_partitions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(200)),
    Column("owner_incarnation", String(32)),
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    Column("claimed_at", Float),
)

partition_claims = Table(
    "partition_claims", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("part", Integer, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("node", String(200), nullable=False),
    Column("incarnation", String(32), nullable=False),
    Column("reason", String(16), nullable=False),  # free, expired, released, takeover
    Column("claimed_at", Float, nullable=False),
)
Index("ix_partition_claims_part", partition_claims.c.part, partition_claims.c.epoch)

session_writes = Table(
    "session_writes", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("session_id", String(64), nullable=False),
    Column("part", Integer, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("node", String(200), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("at", Float, nullable=False),
)
Index("ix_session_writes_session", session_writes.c.session_id, session_writes.c.id)

inbox_sources = Table(
    "inbox_sources", metadata,
    Column("source", String(80), primary_key=True),
    Column("at", Float, nullable=False),
)
Index("ix_inbox_sources_at", inbox_sources.c.at)

#: The columns added to the domains' tables: (table, column, type, NULL allowed).
ADDED_COLUMNS = (
    ("sessions", "part", "INTEGER", False), ("sessions", "epoch", "BIGINT", False),
    ("sessions", "seq", "BIGINT", False),
    ("inbox", "part", "INTEGER", False), ("inbox", "taken_epoch", "BIGINT", True),
    ("outbox", "part", "INTEGER", False),
    ("callbacks", "part", "INTEGER", False),
    ("deliveries", "part", "INTEGER", False), ("deliveries", "taken_epoch", "BIGINT", True),
)
#: Made on PostgreSQL only (see the module's docstring).
PARTITION_INDEXES = {
    "ix_sessions_part_status": ("sessions", "part, status"),
    "ix_inbox_part_taken": ("inbox", "part, taken_epoch"),
    "ix_outbox_part": ("outbox", "part"),
    "ix_callbacks_part_state": ("callbacks", "part, state"),
    "ix_callbacks_session": ("callbacks", "session_id"),
    "ix_deliveries_part_taken": ("deliveries", "part, taken_epoch"),
}
#: How each table's partition follows from a column of it: (table, key column, kind).
_BACKFILL = (("sessions", "id", "id"), ("inbox", "session_id", "id"), ("outbox", "session_id", "id"),
             ("callbacks", "id", "id"), ("deliveries", "ordering_key", "ordering"))


def migrate(conn: Connection) -> None:
    """Migration 7: the cluster tables and the 64 partition rows; on PostgreSQL also the partition,
    epoch and sequence columns of the domains' tables (added only where missing: a table declared
    with them later is made with them), their indexes and values."""
    for table in (cluster_nodes, cluster_partitions, partition_claims, session_writes, inbox_sources):
        table.create(conn)
    conn.execute(cluster_partitions.insert(), [{"id": p, "epoch": 0} for p in range(PARTITIONS)])
    if conn.dialect.name != "postgresql":
        return
    inspector = inspect(conn)
    present = set(inspector.get_table_names())  # a store opened with some domains' schemas only
    for table, column, sql_type, nullable in ADDED_COLUMNS:
        if table in present and column not in {c["name"] for c in inspector.get_columns(table)}:
            spec = sql_type if nullable else f"{sql_type} NOT NULL DEFAULT 0"
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {spec}"))
    for name, (table, columns) in PARTITION_INDEXES.items():
        if table in present:
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"))
    for table, key, kind in _BACKFILL:
        if table in present:
            backfill(conn, table, key, kind)


def backfill(conn: Connection, table: str, key: str, kind: str) -> None:
    """Set ``table.part`` from ``key`` as ``engine.ids`` places it: our hex ids in SQL, in one
    statement; every other key (a client's id, an ordering key) by the Python function."""
    if kind == "id":
        conn.execute(text(f"UPDATE {table} SET part = ('x' || substr({key}, 1, 4))::bit(16)::int % {PARTITIONS} "
                          f"WHERE {key} ~ '^[0-9a-fA-F]{{4}}'"))
        where = f"WHERE {key} !~ '^[0-9a-fA-F]{{4}}'"
        place = partition_of
    else:
        where = ""
        place = partition_of_ordering_key
    rows = conn.execute(text(f"SELECT DISTINCT {key} FROM {table} {where}")).scalars().all()
    updates = [{"k": value, "p": place(value)} for value in rows]
    if updates:
        conn.execute(text(f"UPDATE {table} SET part = :p WHERE {key} = :k"), updates)


def with_partition(table: Table, *extra: Column) -> Table:
    """``table`` as a cluster node writes it on PostgreSQL: its columns plus ``part`` (and
    ``extra``, e.g. ``taken_epoch``), in a metadata of its own that nothing creates (migration 7
    added the columns there). A ``TableWrite`` of it writes the partition a row carries; the
    domains' own tables stay without it, so SQLite and a single node write what they always did."""
    copy = table.to_metadata(MetaData())
    copy.append_column(Column("part", Integer, nullable=False, server_default="0"))
    for column in extra:
        copy.append_column(column)
    return copy
