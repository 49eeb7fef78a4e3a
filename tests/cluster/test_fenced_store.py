"""The store of a cluster node (issue 14), on one PostgreSQL database shared by several stores:
ids minted by different nodes never collide, a unit whose node no longer holds its partitions
leaves no row at all, and a unit's notifications reach listeners only once it has committed."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from engine import persistence
from engine.ids import random_id_in
from engine.secretbox import SecretBox
from engine.sessions import rows as session_rows
from engine.storage import SLOTS, Fence, Fenced, KeyMismatch, Store, UnitOfWork, check_secret_key


@pytest.fixture
def db_url(postgres) -> str:
    return postgres.new_database()


async def lease(store: Store, node: str, incarnation: str, partitions: list[int], ttl: float = 30.0) -> dict[int, int]:
    """What a node's registration and claim do (the membership of step 4): a live node row, and
    ``partitions`` owned by it at a new epoch each. Returns the epochs."""
    async with store.engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO cluster_nodes (name, incarnation, started_at, heartbeat_at, expires_at) "
            "VALUES (:n, :i, 0, 0, extract(epoch from clock_timestamp()) + :ttl) "
            "ON CONFLICT (name) DO UPDATE SET incarnation = :i, "
            "expires_at = extract(epoch from clock_timestamp()) + :ttl"), {"n": node, "i": incarnation, "ttl": ttl})
        rows = await conn.execute(text(
            "UPDATE cluster_partitions SET owner = :n, owner_incarnation = :i, epoch = epoch + 1 "
            "WHERE id = ANY(:ps) RETURNING id, epoch"), {"n": node, "i": incarnation, "ps": partitions})
        return dict(rows.all())


def snapshot(session_id: str) -> dict:
    return {"id": session_id, "flow": "hello", "flow_hash": "h", "flow_version": 1, "status": "running",
            "parent_id": None, "created_at": 1.0, "updated_at": 1.0, "snapshot": "{}"}


def unit_for(store: Store, session_id: str, fence: Fence | None, notify: list[tuple[str, str]] = ()) -> UnitOfWork:
    unit = UnitOfWork()
    unit.add(session_rows.SESSIONS, [snapshot(session_id)])
    unit.add(session_rows.INBOX, [{"id": store.new_id(), "session_id": session_id, "event": "{}", "created_at": 1.0}])
    unit.values["v:" + session_id] = "x"
    unit.fence = fence
    unit.notify = list(notify)
    return unit


async def stored(store: Store, session_id: str) -> tuple[int, int, int]:
    """How many rows of the unit ``unit_for(session_id)`` are stored: sessions, inbox, values."""
    async with store.engine.connect() as conn:
        found = []
        for sql in ("SELECT count(*) FROM sessions WHERE id = :s", "SELECT count(*) FROM inbox WHERE session_id = :s",
                    "SELECT count(*) FROM engine_values WHERE key = 'v:' || :s"):
            found.append((await conn.execute(text(sql), {"s": session_id})).scalar())
        return tuple(found)


async def listen(url: str, channel: str) -> tuple[asyncpg.Connection, asyncio.Queue]:
    """A listener on its own connection, as a node's listener will be."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    got: asyncio.Queue = asyncio.Queue()
    await conn.add_listener(channel, lambda _conn, _pid, _channel, payload: got.put_nowait(payload))
    return conn, got


async def test_two_nodes_on_one_database_never_mint_the_same_id(db_url: str) -> None:
    first = await persistence.open_store(db_url)  # the database was used single-process first
    try:
        ids = [first.new_id() for _ in range(3000)]
        unit = UnitOfWork()
        unit.add(session_rows.OUTBOX, [{"id": i, "session_id": "s0", "kind": "k", "payload": "{}", "created_at": 1.0}
                                       for i in ids])
        await first.write(unit)
    finally:
        await first.close()
    a, b = await persistence.open_store(db_url), await persistence.open_store(db_url)
    try:
        await a.use_slot(1)
        await b.use_slot(2)
        minted_a, minted_b = [a.new_id() for _ in range(2000)], [b.new_id() for _ in range(2000)]
        assert min(minted_a + minted_b) > max(ids) + 1  # past everything stored
        assert {i % SLOTS for i in minted_a} == {1} and {i % SLOTS for i in minted_b} == {2}
        assert minted_a == sorted(minted_a) and not set(minted_a) & set(minted_b)

        async def write_many(store: Store, minted: list[int], session: str) -> None:
            for start in range(0, len(minted), 100):
                unit = UnitOfWork()
                unit.add(session_rows.INBOX, [{"id": i, "session_id": session, "event": "{}", "created_at": 1.0}
                                              for i in minted[start:start + 100]])
                await store.write(unit)

        await asyncio.gather(write_many(a, minted_a, "sa"), write_many(b, minted_b, "sb"))  # no key clash
        # B takes over partitions A wrote: after its reseed its ids follow all of A's
        await b.reseed()
        after = b.new_id()
        assert after > max(minted_a) and after % SLOTS == 2
        await a.reseed()  # reseeding never moves a sequence back
        assert a.new_id() > minted_a[-1]
    finally:
        await a.close()
        await b.close()


async def test_a_fenced_unit_leaves_no_row(db_url: str) -> None:
    store = await persistence.open_store(db_url)
    listener, got = await listen(db_url, "cbe_inbox")
    try:
        held = await lease(store, "n1", "i1", [3, 5])
        s3, s5 = random_id_in(3), random_id_in(5)
        await store.write(unit_for(store, s3, Fence("n1", "i1", held), [("cbe_inbox", "3")]))
        assert await stored(store, s3) == (1, 1, 1)
        assert await asyncio.wait_for(got.get(), 5) == "3"

        await lease(store, "n2", "j1", [5])  # another node claims partition 5: a new epoch
        with pytest.raises(Fenced) as fenced:
            await store.write(unit_for(store, s5, Fence("n1", "i1", held), [("cbe_inbox", "5")]))
        assert fenced.value.partitions == {5} and not fenced.value.node_lost
        assert await stored(store, s5) == (0, 0, 0)  # not even the rows of partition 3 or the engine value

        # n1 restarted under its name (a new incarnation): the old one's writes are refused
        await lease(store, "n1", "i2", [])
        with pytest.raises(Fenced) as fenced:
            await store.write(unit_for(store, "x1", Fence("n1", "i1", {3: held[3]})))
        assert fenced.value.partitions == {3} and fenced.value.node_lost
        with pytest.raises(Fenced):  # a unit writing no partition still needs the live node row
            await store.write(unit_for(store, "x2", Fence("n1", "i1", {})))

        # the lease ran out (no heartbeat): refused although nobody claimed the partition yet
        held = await lease(store, "n3", "k1", [9], ttl=-1.0)
        with pytest.raises(Fenced) as fenced:
            await store.write(unit_for(store, "x3", Fence("n3", "k1", held)))
        assert fenced.value.node_lost
        assert [await stored(store, s) for s in ("x1", "x2", "x3")] == [(0, 0, 0)] * 3
        await asyncio.sleep(0.3)
        assert got.empty()  # no fenced unit's notification was sent

        held = await lease(store, "n3", "k1", [9])  # alive again (a new claim): it writes
        await store.write(unit_for(store, "x3", Fence("n3", "k1", held)))
        assert await stored(store, "x3") == (1, 1, 1)
    finally:
        await listener.close()
        await store.close()


async def test_a_notification_arrives_only_after_commit_and_a_claim_waits_for_the_write(db_url: str) -> None:
    store = await persistence.open_store(db_url)
    listener, got = await listen(db_url, "cbe_inbox")
    blocker = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    claimer = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        held = await lease(store, "n1", "i1", [7])
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute("LOCK TABLE sessions IN EXCLUSIVE MODE")  # the unit's first data row waits
        write = asyncio.create_task(store.write(unit_for(store, random_id_in(7), Fence("n1", "i1", held),
                                                         [("cbe_inbox", "7")])))
        for _ in range(100):  # until the write waits for the lock, inside its transaction
            if await claimer.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the write never reached the locked table")
        assert not write.done()
        await asyncio.sleep(0.2)
        assert got.empty()  # the notification is queued in the open transaction, not sent
        # a claimer locking partitions FOR UPDATE SKIP LOCKED skips the one being written
        claimable = await claimer.fetch("SELECT id FROM cluster_partitions WHERE id IN (7, 8) "
                                        "ORDER BY id FOR UPDATE SKIP LOCKED")
        assert [r["id"] for r in claimable] == [8]
        await blocking.rollback()
        await asyncio.wait_for(write, 5)
        assert await asyncio.wait_for(got.get(), 5) == "7"
    finally:
        for conn in (blocker, claimer, listener):
            await conn.close()
        await store.close()


async def test_every_node_must_hold_the_clusters_secret_key(db_url: str) -> None:
    shared, other = Fernet.generate_key(), Fernet.generate_key()
    stores = [await persistence.open_store(db_url) for _ in range(3)]
    try:
        check = SecretBox(shared).derive("cluster key check").hex()
        await check_secret_key(stores[0], check)  # the first node stores it
        await check_secret_key(stores[1], SecretBox(shared).derive("cluster key check").hex())
        with pytest.raises(KeyMismatch, match="same CALLBACK_ENGINE_SECRET_KEY"):
            await check_secret_key(stores[2], SecretBox(other).derive("cluster key check").hex())
        assert await stores[0].get_value("cluster.secret_key_check") == check  # the first one stays
        assert shared.decode() not in check
    finally:
        for store in stores:
            await store.close()


async def test_a_sqlite_store_neither_fences_nor_notifies(tmp_path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}", persistence.SCHEMAS)
    try:
        with pytest.raises(ValueError, match="one process"):
            await store.write(unit_for(store, "s", Fence("n", "i", {})))
        with pytest.raises(ValueError, match="one process"):
            await store.write(unit_for(store, "s", None, [("cbe_inbox", "1")]))
        assert store.new_id() + 1 == store.new_id()  # a single process keeps the plain sequence
    finally:
        await store.close()
