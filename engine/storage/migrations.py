"""Versioned schema migrations, applied in order and recorded in ``schema_migrations``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Connection, inspect, select

from . import schema

log = logging.getLogger("engine.storage")


def _v1(conn: Connection) -> None:
    for table in (schema.flow_versions, schema.sessions, schema.inbox, schema.outbox):
        table.create(conn)


def _v2(conn: Connection) -> None:
    for table in (schema.callbacks, schema.callback_events):
        table.create(conn)


def _v3(conn: Connection) -> None:
    for table in (schema.subscriptions, schema.deliveries):
        table.create(conn)


def _v4(conn: Connection) -> None:
    schema.engine_values.create(conn)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "flow versions, sessions, inbox, outbox", _v1),
    (2, "callback records and their status events", _v2),
    (3, "notification subscriptions and deliveries", _v3),
    (4, "engine values (sealed push credentials)", _v4),
]


def migrate(conn: Connection) -> list[int]:
    """Bring the schema up to date; returns the versions applied now."""
    if not inspect(conn).has_table("schema_migrations"):
        schema.schema_migrations.create(conn)
    done = set(conn.execute(select(schema.schema_migrations.c.version)).scalars())
    applied = []
    for version, description, step in MIGRATIONS:
        if version in done:
            continue
        log.info("applying schema migration %d: %s", version, description)
        step(conn)
        conn.execute(schema.schema_migrations.insert().values(version=version, applied_at=time.time()))
        applied.append(version)
    return applied
