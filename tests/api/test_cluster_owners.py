"""Who holds each partition (engine/storage/owners.py), read from PostgreSQL with two real
memberships: the holders and their internal URLs as claimed; one query serves many questions; a
change is seen after ``invalidate`` (what a ``cbe_partitions`` notification does); a node whose
lease ran out holds nothing."""

from __future__ import annotations

import asyncio

from engine import persistence
from engine.ids import PARTITIONS
from engine.storage.membership import Membership
from engine.storage.owners import Owner, Owners

LEASE, HEARTBEAT = 3.0, 0.5


async def test_owners_follow_the_claims(postgres) -> None:
    url = postgres.new_database()
    stores = [await persistence.open_store(url) for _ in range(3)]
    a = Membership(stores[0], "a", lease=LEASE, heartbeat=HEARTBEAT, internal_url="http://10.0.0.1:8080")
    b = Membership(stores[1], "b", lease=LEASE, heartbeat=HEARTBEAT, internal_url="http://10.0.0.2:8080")
    owners = Owners(stores[2])
    try:
        await a.start()
        assert len(a.held) == PARTITIONS
        assert await owners.owner_of(7) == Owner("a", "http://10.0.0.1:8080")
        for p in range(PARTITIONS):
            assert (await owners.owner_of(p)).node == "a"
        assert owners.loads == 1  # one query answered all 64

        await b.start()
        await asyncio.wait_for(_until(lambda: len(a.held) == len(b.held) == PARTITIONS // 2), 20)
        moved = next(iter(b.held))
        assert (await owners.owner_of(moved)).node == "a"  # cached: not told yet
        owners.invalidate("released")
        assert await owners.owner_of(moved) == Owner("b", "http://10.0.0.2:8080")
        assert {p for p in range(PARTITIONS) if (await owners.owner_of(p)).node == "a"} == set(a.held)
        assert owners.loads == 2

        await a.crash()  # both stop heartbeating (and claiming): no live holder once the leases ran out
        await b.crash()
        await asyncio.sleep(LEASE + 0.2)
        owners.invalidate()
        assert await owners.owner_of(moved) is None
        loads = owners.loads
        assert await owners.owner_of(moved) is None and owners.loads == loads  # a miss reads again, not at once
        await asyncio.sleep(owners.min_refresh)
        assert await owners.owner_of(moved) is None and owners.loads == loads + 1

    finally:
        await a.crash()
        await b.crash()
        for store in stores:
            await store.close()


async def _until(check) -> None:
    while not check():
        await asyncio.sleep(0.05)
