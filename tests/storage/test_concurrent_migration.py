"""Nodes of a cluster started together on a database that needs migrations (a first start, an
upgrade): one applies them, the others wait for it and find them done; none fails to start."""

from __future__ import annotations

import asyncio

import asyncpg

from engine.persistence import open_store


async def test_nodes_starting_together_migrate_a_database_once(postgres) -> None:
    url = postgres.new_database()
    stores = await asyncio.gather(*(open_store(url) for _ in range(3)), return_exceptions=True)
    try:
        failed = [s for s in stores if isinstance(s, BaseException)]
        assert not failed, failed
    finally:
        for store in stores:
            if not isinstance(store, BaseException):
                await store.close()
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()
    assert versions == sorted(set(versions)) and len(versions) >= 9, versions
