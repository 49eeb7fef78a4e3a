"""Versioned schema migrations, applied in order and recorded in ``schema_migrations``.

Storage cannot import the domains, so each domain hands its migrations down (a ``Schema``) and
the caller of ``Store.open`` passes them all. Versions are one sequence over every domain (a
database records only numbers): versions 1 to 4 are the ones every existing database has, and a
new migration of any domain takes the next free number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Table, inspect, select

from . import cluster_tables, config_docs, schema
from .unit import TableWrite

log = logging.getLogger("engine.storage")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


@dataclass(frozen=True)
class Schema:
    """What one domain hands down to storage: the migrations that build its tables, and how its
    tables are written (the store seeds the id sequence from the ``sequenced`` ones)."""

    name: str
    migrations: tuple[Migration, ...]
    writes: tuple[TableWrite, ...] = ()


def creates(*tables: Table) -> Callable[[Connection], None]:
    """A migration step that creates ``tables`` (with their indexes)."""
    def step(conn: Connection) -> None:
        for table in tables:
            table.create(conn)
    return step


# Storage's own tables: the generic key/value store (version 4 since the first databases), and
# those of a cluster on PostgreSQL with the partition columns of the domains' tables (7) and its
# shared configuration (8).
STORAGE = Schema("storage", (Migration(4, "engine values (sealed push credentials)", creates(schema.engine_values)),
                             Migration(7, "cluster: nodes, partitions, claims, session writes, inbox sources; "
                                          "partition columns", cluster_tables.migrate),
                             Migration(8, "cluster: shared configuration (documents, current flows, API keys, "
                                          "console sign-ins)", config_docs.migrate)))


def ordered(schemas: Iterable[Schema]) -> list[Migration]:
    """Every migration of ``schemas`` and storage's own, by version; two claiming one version
    is a programming error caught at start-up, not a silently skipped table."""
    by_version: dict[int, tuple[str, Migration]] = {}
    for sch in (STORAGE, *schemas):
        for migration in sch.migrations:
            if migration.version in by_version and by_version[migration.version][1] is not migration:
                raise ValueError(f"schema migration {migration.version} is claimed by both "
                                 f"{by_version[migration.version][0]} and {sch.name}")
            by_version[migration.version] = (sch.name, migration)
    return [by_version[v][1] for v in sorted(by_version)]


#: The advisory lock a PostgreSQL database's migrations are applied under ("CBE0").
MIGRATION_LOCK = 0x43424530


def migrate(conn: Connection, migrations: list[Migration]) -> list[int]:
    """Bring the schema up to date; returns the versions applied now. On PostgreSQL, under an
    advisory lock held to the end of the transaction: the nodes of a cluster starting together
    (a first start, an upgrade) apply each migration once, the others waiting and finding it done
    (they failed to start: two creating the same tables)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    if not inspect(conn).has_table("schema_migrations"):
        schema.schema_migrations.create(conn)
    done = set(conn.execute(select(schema.schema_migrations.c.version)).scalars())
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        log.info("applying schema migration %d: %s", migration.version, migration.description)
        migration.apply(conn)
        conn.execute(schema.schema_migrations.insert().values(version=migration.version, applied_at=time.time()))
        applied.append(migration.version)
    return applied
