"""Migration 7 (issue 14): an existing database gains the cluster tables and the partition
columns on its next start, keeps every row, and on PostgreSQL every row's partition is the one
``engine.ids`` computes; a guarded upsert never lets a column go back."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, text

from engine import persistence
from engine.ids import PARTITIONS, partition_of, partition_of_ordering_key, random_id
from engine.sessions import rows as session_rows
from engine.storage import Migration, Schema, Store, TableWrite, UnitOfWork, creates
from engine.storage.cluster_tables import ADDED_COLUMNS, PARTITION_INDEXES
from tests.storage.test_old_database import build_old_database

DOMAIN_TABLES = ("sessions", "inbox", "outbox", "callbacks", "deliveries")
HEX = [random_id() for _ in range(6)] + ["ABCDEF" + random_id()[6:]]  # ours (one in capitals)


async def add_rows_with_our_ids(url: str) -> None:
    """Rows keyed by engine ids beside the old test rows (whose ids, "s1", "c1", are not hex)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        for n, sid in enumerate(HEX):
            await conn.execute(text("INSERT INTO sessions VALUES (:id, 'hello', 'h1', 1, 'running', NULL, 1, 2, '{}')"),
                               {"id": sid})
            await conn.execute(text("INSERT INTO inbox VALUES (:n, :id, '{}', 1.0)"), {"n": 100 + n, "id": sid})
            await conn.execute(text("INSERT INTO outbox VALUES (:n, :id, 'send', '{}', 1.0)"),
                               {"n": 200 + n, "id": sid})
            await conn.execute(text("INSERT INTO callbacks VALUES (:id, 'svc', 'QUEUED', '+1', 1, 2, :id, 1, 1, '{}')"),
                               {"id": sid})
            key = f"httpcb|http://x/y|callback/svc/{sid}" if n % 2 else f"fcm|{sid}"
            await conn.execute(text("INSERT INTO deliveries VALUES (:n, :k, 'pending', 0, 0, '{}', 1.0)"),
                               {"n": 300 + n, "k": key})
    await engine.dispose()


async def parts(store: Store, table: str, key: str) -> dict[str, int]:
    async with store.engine.connect() as conn:
        return {k: p for k, p in (await conn.execute(text(f"SELECT {key}, part FROM {table}"))).all()}


async def test_an_old_database_gains_the_cluster_tables_and_partition_columns(db_url: str) -> None:
    await build_old_database(db_url)
    await add_rows_with_our_ids(db_url)
    store = await persistence.open_store(db_url)
    try:
        async with store.engine.connect() as conn:
            versions = sorted((await conn.execute(text("SELECT version FROM schema_migrations"))).scalars())
            partitions = (await conn.execute(text("SELECT id, owner, epoch FROM cluster_partitions ORDER BY id"))).all()
            columns = await conn.run_sync(lambda c: {t: {col["name"] for col in inspect(c).get_columns(t)}
                                                     for t in DOMAIN_TABLES})
            indexes = await conn.run_sync(lambda c: {i["name"] for t in DOMAIN_TABLES
                                                     for i in inspect(c).get_indexes(t)})
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert versions == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        assert [tuple(p) for p in partitions] == [(p, None, 0) for p in range(PARTITIONS)]
        assert {"cluster_nodes", "partition_claims", "session_writes", "inbox_sources"} <= tables
        postgres = store.dialect == "postgresql"
        # the domains' tables gain columns on PostgreSQL only (SQLite is one process and stays as it was)
        assert [column in columns[table] for table, column, _type, _null in ADDED_COLUMNS] == (
            [postgres] * len(ADDED_COLUMNS))
        assert len(await session_rows.load_running(store)) == 1 + len(HEX)  # every row is still there
        if not postgres:
            return
        # ...with its partition, computed
        sessions = await parts(store, "sessions", "id")
        assert set(sessions) == {"s0", "s1", *HEX}
        assert set(PARTITION_INDEXES) <= indexes

        def expected(place, keys) -> dict[str, int]:
            return {k: place(k) for k in keys}

        assert sessions == expected(partition_of, sessions)
        assert await parts(store, "callbacks", "id") == expected(partition_of, ("c0", "c1", *HEX))
        for table in ("inbox", "outbox"):
            assert await parts(store, table, "session_id") == expected(partition_of, ("s1", *HEX))
        deliveries = await parts(store, "deliveries", "ordering_key")
        assert len(deliveries) == 1 + len(HEX)
        assert deliveries == expected(partition_of_ordering_key, deliveries)
        # the SQL reads capitals as hex, and a key that is not ours goes by its CRC
        assert sessions[HEX[-1]] == 0xABCD % 64 and deliveries["k"] == partition_of("k")
    finally:
        await store.close()
    store = await persistence.open_store(db_url)  # a second start applies nothing again
    await store.close()


local = MetaData()
leased = Table("leased", local, Column("id", String(20), primary_key=True),
               Column("epoch", Integer, nullable=False), Column("body", String(20), nullable=False))
LEASED = TableWrite(leased, replace=("epoch", "body"), guard="epoch")


async def test_a_guarded_upsert_never_lets_the_epoch_go_back(db_url: str) -> None:
    store = await Store.open(db_url, [Schema("test", (Migration(201, "leased", creates(leased)),), (LEASED,))])
    try:
        for epoch, body in ((2, "two"), (1, "stale"), (2, "two again"), (3, "three"), (2, "stale again")):
            unit = UnitOfWork()
            unit.add(LEASED, [{"id": "a", "epoch": epoch, "body": body}])
            await store.write(unit)
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("SELECT epoch, body FROM leased"))).one() == (3, "three")
    finally:
        await store.close()


def test_a_guard_must_be_a_replaced_column_of_an_upsert() -> None:
    import pytest

    with pytest.raises(ValueError, match="a guard needs"):
        TableWrite(leased, guard="epoch")
    with pytest.raises(ValueError, match="a guard needs"):
        TableWrite(leased, replace=("body",), guard="nope")
