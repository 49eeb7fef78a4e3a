"""The notifications domain's tables and queries: subscriptions and durable deliveries.

The rows themselves are made by ``Subscription.row`` and ``Delivery.row``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..storage import Migration, Schema, Store, TableWrite, creates, metadata
from .delivery import DEAD

# Notification subscriptions (the GMS notification API, and those made on a client's behalf).
subscriptions = Table(
    "subscriptions", metadata,
    Column("id", String(64), primary_key=True),
    Column("record", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Notifications on their way to a target: written with the change that caused them, retried with
# backoff, deleted when delivered, kept with status "dead" when they finally fail.
deliveries = Table(
    "deliveries", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("ordering_key", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", Float, nullable=False),
    Column("record", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_deliveries_status", deliveries.c.status, deliveries.c.id)

SUBSCRIPTIONS = TableWrite(subscriptions, replace=("record", "expires_at"))
DELIVERIES = TableWrite(deliveries, replace=("status", "attempts", "next_at", "record", "updated_at"),
                        sequenced=True)

SCHEMA = Schema("notifications", (Migration(3, "notification subscriptions and deliveries",
                                            creates(subscriptions, deliveries)),),
                (SUBSCRIPTIONS, DELIVERIES))


async def load_subscriptions(store: Store) -> list[dict[str, Any]]:
    return await store.rows_where(subscriptions)


async def load_deliveries(store: Store, status: str | None = None, limit: int | None = None,
                          offset: int = 0) -> list[dict[str, Any]]:
    """Delivery rows by id (``status`` to keep one kind, e.g. the dead letters)."""
    query = select(deliveries).order_by(deliveries.c.id).offset(offset)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    if limit is not None:
        query = query.limit(limit)
    return await store.fetch_all(query)


async def purge(conn: AsyncConnection, cutoff: float) -> dict[str, int]:
    """Dead letters last tried before ``cutoff``; pending deliveries are never touched."""
    gone = await conn.execute(delete(deliveries).where(deliveries.c.status == DEAD, deliveries.c.updated_at < cutoff))
    return {"dead_letters": gone.rowcount}
