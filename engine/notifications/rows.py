"""The notifications domain's tables and queries: subscriptions and durable deliveries.

The rows themselves are made by ``Subscription.row`` and ``Delivery.row``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text, column, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..storage import Migration, Schema, Store, TableWrite, creates, metadata
from ..storage.cluster_tables import with_partition
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

#: The same write on a cluster node: each row with its partition (its ordering key's) and the epoch
#: it was taken at (None: handed over to the partition's holder, who takes it).
CLUSTER_DELIVERIES = TableWrite(with_partition(deliveries, Column("taken_epoch", BigInteger)),
                                replace=(*(DELIVERIES.replace or ()), "taken_epoch"), sequenced=True)
PART = column("part", Integer)  # the PostgreSQL-only partition column (migration 7)
#: Who is told that a subscription changed (payload: its id), so every node has them all.
SUBSCRIPTIONS_CHANNEL = "cbe_subscriptions"

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


# Deliveries of partitions this node holds, taken at the epoch it holds each (the join with
# cluster_partitions is the fence: a partition claimed by another node meanwhile takes nothing):
# every row of them on adopting (``$4`` true), the rows handed over since (not yet taken) after.
_TAKE = """
UPDATE deliveries d SET taken_epoch = p.epoch FROM cluster_partitions p
WHERE d.part = p.id AND p.id = ANY($1::int[]) AND p.owner = $2 AND p.owner_incarnation = $3
  AND (d.taken_epoch IS NULL OR ($4 AND d.taken_epoch < p.epoch))
RETURNING d.id, d.record
"""


async def take(store: Store, partitions: list[int], node: str, incarnation: str, *,
               adopting: bool) -> list[dict[str, Any]]:
    """Take the deliveries of ``partitions`` (``adopting``: all of them, pending and dead; else
    only those handed over and not yet taken), oldest first."""
    async with store.engine.begin() as conn:
        found = await conn.exec_driver_sql(_TAKE, (partitions, node, incarnation, adopting))
        rows = [{"id": r[0], "record": r[1]} for r in found.all()]
    return sorted(rows, key=lambda r: r["id"])


async def delivery_partition(store: Store, delivery_id: int) -> int | None:
    """The partition of a stored delivery (a cluster: whose holder replays a dead letter)."""
    found = await store.fetch_one(select(PART).select_from(deliveries).where(deliveries.c.id == delivery_id))
    return int(found["part"]) if found else None


async def load_subscription(store: Store, subscription_id: str) -> dict[str, Any] | None:
    return await store.fetch_one(select(subscriptions).where(subscriptions.c.id == subscription_id))


async def purge(conn: AsyncConnection, cutoff: float) -> dict[str, int]:
    """Dead letters last tried before ``cutoff``; pending deliveries are never touched."""
    gone = await conn.execute(delete(deliveries).where(deliveries.c.status == DEAD, deliveries.c.updated_at < cutoff))
    return {"dead_letters": gone.rowcount}
