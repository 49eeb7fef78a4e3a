"""The fence of a session batch (issue 14): a write cut off from its node mid-transaction (the
network gone, the process paused) does not keep its partitions locked, or a claimer, which skips
locked partitions, could never take them over; the server ends such a transaction once it has been
idle for the lease less a heartbeat."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from engine import persistence
from engine.storage import fence
from engine.storage.membership import Membership

LEASE, HEARTBEAT = 3.0, 0.5


async def test_a_write_idle_in_its_transaction_lets_go_of_its_partitions(postgres) -> None:
    store = await persistence.open_store(postgres.new_database())
    member = Membership(store, "a", lease=LEASE, heartbeat=HEARTBEAT)
    try:
        await member.start()
        guard = member.fence({0, 1})
        assert guard.idle_limit == LEASE - HEARTBEAT

        async def locked() -> int:
            async with store.engine.connect() as conn:
                return (await conn.execute(text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE c.relname = 'cluster_partitions' AND l.mode = 'RowShareLock'"))).scalar()

        conn = await store.engine.connect()
        transaction = await conn.begin()
        await fence.check(conn, guard)  # the share locks taken; then nothing more is sent
        assert await locked() == 1
        await asyncio.sleep(LEASE - HEARTBEAT + 1.0)
        assert await locked() == 0  # the server ended the idle transaction
        try:
            await transaction.rollback()
        except Exception:
            pass  # its connection is gone
        await conn.close()
    finally:
        await member.crash()
        await store.close()
