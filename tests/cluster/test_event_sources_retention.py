"""The cluster's event sources (``inbox_sources``: one row per platform event taken in and per
sourced handoff) are forgotten after a day, so the table does not grow for ever."""

from __future__ import annotations

import time

from sqlalchemy import insert, select

from engine import persistence
from engine.sessions import rows
from engine.storage.cluster_tables import inbox_sources


async def test_sources_older_than_the_kept_time_are_forgotten_and_newer_ones_kept(postgres) -> None:
    store = await persistence.open_store(postgres.new_database())
    try:
        now = time.time()
        async with store.engine.begin() as conn:
            await conn.execute(insert(inbox_sources), [
                {"source": "p1:1", "at": now - rows.SOURCES_KEPT_SECONDS - 60},
                {"source": "p1:2", "at": now - rows.SOURCES_KEPT_SECONDS - 1},
                {"source": "p1:3", "at": now - 60},
            ])
        assert await rows.forget_sources(store, now - rows.SOURCES_KEPT_SECONDS) == 2
        async with store.engine.connect() as conn:
            left = (await conn.execute(select(inbox_sources.c.source))).scalars().all()
        assert left == ["p1:3"]
    finally:
        await store.close()
