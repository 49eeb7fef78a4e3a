"""The fence of a cluster write: a unit of work commits only while its node still holds the lease
of every partition it writes, at the epoch it was claimed with (issue 14).

The check is the first statement of the unit's own transaction, and it takes a share lock on the
partition rows: a claimer locks them ``FOR UPDATE ... SKIP LOCKED``, so it skips a partition while
a write to it is in flight, and once it has claimed it (a new epoch) every later write of the old
holder finds the epoch changed and rolls back. No write can commit after a claim of its partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from .errors import StorageUnavailable

# The partitions still held by this node at the given epochs, in the database's clock. The
# transaction that holds their share locks may not stay idle longer than $4 (ms): a node cut off
# from the database in the middle of a write would otherwise keep them locked, and a claimer skips
# locked partitions, until the server notices the dead connection (minutes). A write of a live node
# is never idle that long: its node would have fenced itself first.
_HELD = """
WITH guard AS (SELECT set_config('idle_in_transaction_session_timeout', $4, true))
SELECT p.id, p.epoch FROM guard, cluster_partitions p
JOIN cluster_nodes n ON n.name = p.owner AND n.incarnation = p.owner_incarnation
WHERE p.id = ANY($1::int[]) AND n.name = $2 AND n.incarnation = $3
  AND n.expires_at > extract(epoch from clock_timestamp())
FOR SHARE OF p
"""
# A unit that writes no partition (an engine value) still needs the node's live lease.
_ALIVE = """
SELECT 1 FROM cluster_nodes
WHERE name = $1 AND incarnation = $2 AND expires_at > extract(epoch from clock_timestamp())
"""


@dataclass(frozen=True)
class Fence:
    """Who writes (``node`` in its ``incarnation``) and the epoch it holds each partition at;
    ``idle_limit``: seconds the write's transaction may stay idle holding its locks (0: no limit)."""

    node: str
    incarnation: str
    epochs: dict[int, int] = field(default_factory=dict)
    idle_limit: float = 0.0


class Fenced(StorageUnavailable):
    """The unit was not written: this node no longer holds ``partitions`` at the epochs it named
    (another node claimed them), or its lease ran out (``partitions`` empty for a unit that wrote
    none). The caller drops those partitions and must not retry the unit as it was."""

    def __init__(self, partitions: frozenset[int], node_lost: bool):
        self.partitions = partitions
        self.node_lost = node_lost
        what = "this node lost its lease" if node_lost else f"ownership moved; retry (partitions {sorted(partitions)})"
        super().__init__(what)


async def check(conn: AsyncConnection, fence: Fence) -> None:
    """Raise ``Fenced`` unless ``fence`` holds; in the caller's transaction, before its writes."""
    if not fence.epochs:
        found = (await conn.exec_driver_sql(_ALIVE, (fence.node, fence.incarnation))).first()
        if found is None:
            raise Fenced(frozenset(), node_lost=True)
        return
    rows = await conn.exec_driver_sql(_HELD, (sorted(fence.epochs), fence.node, fence.incarnation,
                                              str(int(fence.idle_limit * 1000))))
    held = dict(rows.all())
    lost = frozenset(p for p, epoch in fence.epochs.items() if held.get(p) != epoch)
    if lost:
        # None held at all: the node row itself has gone or expired (or every partition moved).
        raise Fenced(lost, node_lost=not held and len(lost) == len(fence.epochs) and not await _alive(conn, fence))


async def _alive(conn: AsyncConnection, fence: Fence) -> bool:
    return (await conn.exec_driver_sql(_ALIVE, (fence.node, fence.incarnation))).first() is not None
