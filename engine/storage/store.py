"""The store: one transaction per batch of session snapshots and the effects that left them."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from . import schema
from .migrations import migrate

log = logging.getLogger("engine.storage")


class StorageUnavailable(RuntimeError):
    """A change could not be made durable in time (the database is down, the disk is full):
    the API answers 503 with this message instead of waiting for ever."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)


def dumps(value: Any) -> str:
    """Compact JSON. One prepared encoder: ``json.dumps`` with options builds a new one per call,
    which is half the cost of a small recorded event, and every snapshot and event is dumped."""
    return _ENCODER.encode(value)


@dataclass
class Batch:
    """What one commit writes; built between macrosteps so it is a consistent cut."""

    sessions: list[dict[str, Any]] = field(default_factory=list)
    inbox: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    inbox_done: list[int] = field(default_factory=list)
    outbox_done: list[int] = field(default_factory=list)
    flows: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    callback_events: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    subscriptions_done: list[str] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    deliveries_done: list[int] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.sessions or self.inbox or self.outbox or self.inbox_done
                    or self.outbox_done or self.flows or self.callbacks or self.callback_events
                    or self.subscriptions or self.subscriptions_done or self.deliveries
                    or self.deliveries_done)


class Store:
    """Async access to the database; every method is one transaction."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._next_id = 1

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect, tune SQLite (WAL), apply migrations and seed the id counter."""
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_async_engine(url)
        if engine.dialect.name == "sqlite":
            @event.listens_for(engine.sync_engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                # Committed transactions survive a process crash (kill -9) with NORMAL in WAL mode.
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=5000")
                cur.close()

        store = cls(engine)
        async with engine.begin() as conn:
            applied = await conn.run_sync(migrate)
            top = 0
            for table in (schema.inbox, schema.outbox, schema.callback_events, schema.deliveries):
                top = max(top, (await conn.execute(select(func.max(table.c.id)))).scalar() or 0)
        store._next_id = top + 1
        if applied:
            log.info("schema migrated to version %d", applied[-1])
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    def new_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def _upsert(self, table: Any, columns: tuple[str, ...]) -> Any:
        ins = self._insert(table)
        key = [c.name for c in table.primary_key.columns]
        return ins.on_conflict_do_update(index_elements=key, set_={c: ins.excluded[c] for c in columns})

    async def write_batch(self, batch: Batch) -> None:
        """Write snapshots, new inbox/outbox rows and deletions atomically."""
        async with self.engine.begin() as conn:
            if batch.flows:
                stmt = self._insert(schema.flow_versions).on_conflict_do_nothing(index_elements=["hash"])
                await conn.execute(stmt, batch.flows)
            if batch.sessions:
                ins = self._insert(schema.sessions)
                stmt = ins.on_conflict_do_update(
                    index_elements=["id"],
                    set_={"status": ins.excluded.status, "updated_at": ins.excluded.updated_at,
                          "snapshot": ins.excluded.snapshot},
                )
                await conn.execute(stmt, batch.sessions)
            if batch.inbox:
                await conn.execute(schema.inbox.insert(), batch.inbox)
            if batch.outbox:
                await conn.execute(schema.outbox.insert(), batch.outbox)
            if batch.callbacks:
                ins = self._insert(schema.callbacks)
                stmt = ins.on_conflict_do_update(index_elements=["id"], set_={
                    c: ins.excluded[c] for c in ("state", "desired_time", "expiration_time", "session_id",
                                                 "updated_at", "record")})
                await conn.execute(stmt, batch.callbacks)
            if batch.callback_events:
                await conn.execute(schema.callback_events.insert(), batch.callback_events)
            if batch.subscriptions:
                await conn.execute(self._upsert(schema.subscriptions, ("record", "expires_at")), batch.subscriptions)
            if batch.subscriptions_done:
                await conn.execute(delete(schema.subscriptions).where(
                    schema.subscriptions.c.id.in_(batch.subscriptions_done)))
            if batch.deliveries:
                await conn.execute(self._upsert(schema.deliveries, ("status", "attempts", "next_at", "record",
                                                                    "updated_at")), batch.deliveries)
            if batch.deliveries_done:
                await conn.execute(delete(schema.deliveries).where(schema.deliveries.c.id.in_(batch.deliveries_done)))
            if batch.values:
                await conn.execute(self._upsert(schema.engine_values, ("value", "updated_at")), [
                    {"key": k, "value": v, "updated_at": time.time()} for k, v in batch.values.items()])
            if batch.inbox_done:
                await conn.execute(delete(schema.inbox).where(schema.inbox.c.id.in_(batch.inbox_done)))
            if batch.outbox_done:
                await conn.execute(delete(schema.outbox).where(schema.outbox.c.id.in_(batch.outbox_done)))

    # -- flows -------------------------------------------------------------------------
    async def load_flow_versions(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(schema.flow_versions).order_by(
                schema.flow_versions.c.name, schema.flow_versions.c.version))
            return [dict(r._mapping) for r in rows]

    async def save_flow_version(self, row: dict[str, Any]) -> None:
        await self.write_batch(Batch(flows=[row]))

    # -- sessions ----------------------------------------------------------------------
    async def load_running(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(schema.sessions).where(schema.sessions.c.status == "running"))
            return [dict(r._mapping) for r in rows]

    async def load_inbox(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(schema.inbox).order_by(schema.inbox.c.id))
            return [dict(r._mapping) for r in rows]

    async def load_outbox(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(schema.outbox).order_by(schema.outbox.c.id))
            return [dict(r._mapping) for r in rows]

    async def get_session(self, session_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(schema.sessions).where(schema.sessions.c.id == session_id))).first()
            return dict(row._mapping) if row is not None else None

    async def list_sessions(self, *, flow: str | None = None, status: str | None = None,
                            parent: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        t = schema.sessions
        query = select(t.c.id, t.c.flow, t.c.flow_version, t.c.status, t.c.parent_id,
                       t.c.created_at, t.c.updated_at)
        if flow is not None:
            query = query.where(t.c.flow == flow)
        if status is not None:
            query = query.where(t.c.status == status)
        if parent is not None:
            query = query.where(t.c.parent_id == parent)
        query = query.order_by(t.c.created_at, t.c.id).limit(limit).offset(offset)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    # -- callbacks -----------------------------------------------------------------------
    async def load_open_callbacks(self) -> list[dict[str, Any]]:
        t = schema.callbacks
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t).where(t.c.state != "COMPLETED"))
            return [dict(r._mapping) for r in rows]

    async def get_callback(self, callback_id: str) -> dict[str, Any] | None:
        t = schema.callbacks
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.id == callback_id))).first()
            return dict(row._mapping) if row is not None else None

    async def find_callbacks(self, *, service: str | None = None, states: list[str] | None = None,
                             not_state: str | None = None, customer_number: str | None = None,
                             limit: int = 1000) -> list[dict[str, Any]]:
        t = schema.callbacks
        query = select(t)
        if service is not None:
            query = query.where(t.c.service == service)
        if states:
            query = query.where(t.c.state.in_(states))
        if not_state is not None:
            query = query.where(t.c.state != not_state)
        if customer_number is not None:
            query = query.where(t.c.customer_number == customer_number)
        query = query.order_by(t.c.created_at).limit(limit)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def callback_events_of(self, callback_id: str) -> list[dict[str, Any]]:
        t = schema.callback_events
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t).where(t.c.callback_id == callback_id).order_by(t.c.id))
            return [dict(r._mapping) for r in rows]

    # -- notifications -------------------------------------------------------------------
    async def load_subscriptions(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(select(schema.subscriptions))]

    async def load_deliveries(self, status: str | None = None, limit: int | None = None,
                              offset: int = 0) -> list[dict[str, Any]]:
        t = schema.deliveries
        query = select(t).order_by(t.c.id).offset(offset)
        if status is not None:
            query = query.where(t.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    # -- retention -----------------------------------------------------------------------
    async def purge_older_than(self, cutoff: float) -> dict[str, int]:
        """Delete what ended before ``cutoff`` (epoch seconds): ended sessions, completed callbacks
        with their recorded events, dead letters. Live work is never touched."""
        s, c, e, d = schema.sessions, schema.callbacks, schema.callback_events, schema.deliveries
        async with self.engine.begin() as conn:
            done = (c.c.state == "COMPLETED", c.c.updated_at < cutoff)
            events = (await conn.execute(delete(e).where(e.c.callback_id.in_(select(c.c.id).where(*done))))).rowcount
            callbacks = (await conn.execute(delete(c).where(*done))).rowcount
            sessions = (await conn.execute(delete(s).where(s.c.status != "running", s.c.updated_at < cutoff))).rowcount
            dead = (await conn.execute(delete(d).where(d.c.status == "dead", d.c.updated_at < cutoff))).rowcount
        return {"sessions": sessions, "callbacks": callbacks, "callback_events": events, "dead_letters": dead}

    # -- engine values -------------------------------------------------------------------
    async def get_value(self, key: str) -> str | None:
        t = schema.engine_values
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.c.value).where(t.c.key == key))).first()
            return row[0] if row else None

    async def put_value(self, key: str, value: str, updated_at: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(self._upsert(schema.engine_values, ("value", "updated_at")),
                               [{"key": key, "value": value, "updated_at": updated_at}])
