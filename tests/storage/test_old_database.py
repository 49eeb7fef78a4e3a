"""A database made before storage moved into the domains opens as already migrated, and its rows
read back through the domains. The old schema is written out here as the SQL the earlier code
created (commit ac2d969, versions 1 to 4), so the test does not depend on today's table code."""

from __future__ import annotations

import re

from sqlalchemy import text

from engine import persistence
from engine.callbacks import event_groups
from engine.callbacks import rows as callback_rows
from engine.notifications import rows as notification_rows
from engine.sessions import rows as session_rows
from engine.storage import UnitOfWork

# {ID}: the type of the sequenced ids (BIGINT on PostgreSQL, INTEGER on SQLite);
# {VERSION}: schema_migrations.version (an autoincrementing integer key on PostgreSQL: SERIAL).
OLD_SCHEMA = """
CREATE TABLE schema_migrations (version {VERSION} NOT NULL, applied_at FLOAT NOT NULL, PRIMARY KEY (version));
CREATE TABLE flow_versions (hash VARCHAR(64) NOT NULL, name VARCHAR(200) NOT NULL, version INTEGER NOT NULL,
    kind VARCHAR(16) NOT NULL, text TEXT NOT NULL, base_dir TEXT, created_at FLOAT NOT NULL, PRIMARY KEY (hash));
CREATE INDEX ix_flow_versions_name ON flow_versions (name, version);
CREATE TABLE sessions (id VARCHAR(64) NOT NULL, flow VARCHAR(200) NOT NULL, flow_hash VARCHAR(64) NOT NULL,
    flow_version INTEGER NOT NULL, status VARCHAR(16) NOT NULL, parent_id VARCHAR(64), created_at FLOAT NOT NULL,
    updated_at FLOAT NOT NULL, snapshot TEXT NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_sessions_status ON sessions (status, flow);
CREATE TABLE inbox (id {ID} NOT NULL, session_id VARCHAR(64) NOT NULL, event TEXT NOT NULL,
    created_at FLOAT NOT NULL, PRIMARY KEY (id));
CREATE TABLE outbox (id {ID} NOT NULL, session_id VARCHAR(64) NOT NULL, kind VARCHAR(64) NOT NULL,
    payload TEXT NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY (id));
CREATE TABLE callbacks (id VARCHAR(64) NOT NULL, service VARCHAR(200) NOT NULL, state VARCHAR(16) NOT NULL,
    customer_number VARCHAR(32) NOT NULL, desired_time FLOAT NOT NULL, expiration_time FLOAT NOT NULL,
    session_id VARCHAR(64), created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (id));
CREATE INDEX ix_callbacks_service_state ON callbacks (service, state);
CREATE INDEX ix_callbacks_customer ON callbacks (customer_number);
CREATE INDEX ix_callbacks_desired ON callbacks (service, desired_time);
CREATE TABLE callback_events (id {ID} NOT NULL, callback_id VARCHAR(64) NOT NULL, name VARCHAR(100) NOT NULL,
    data TEXT NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_callback_events_callback ON callback_events (callback_id, id);
CREATE TABLE subscriptions (id VARCHAR(64) NOT NULL, record TEXT NOT NULL, expires_at FLOAT NOT NULL,
    PRIMARY KEY (id));
CREATE TABLE deliveries (id {ID} NOT NULL, ordering_key TEXT NOT NULL, status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL, next_at FLOAT NOT NULL, record TEXT NOT NULL, updated_at FLOAT NOT NULL,
    PRIMARY KEY (id));
CREATE INDEX ix_deliveries_status ON deliveries (status, id);
CREATE TABLE engine_values ("key" VARCHAR(100) NOT NULL, value TEXT NOT NULL, updated_at FLOAT NOT NULL,
    PRIMARY KEY ("key"));
INSERT INTO schema_migrations VALUES (1, 100.5), (2, 100.5), (3, 100.5), (4, 100.5);
INSERT INTO flow_versions VALUES ('h1', 'hello', 1, 'flow', '<scxml/>', NULL, 1.0);
INSERT INTO sessions VALUES ('s1', 'hello', 'h1', 1, 'running', NULL, 1.0, 2.0, '{{}}');
INSERT INTO sessions VALUES ('s0', 'hello', 'h1', 1, 'finished', NULL, 0.5, 0.5, '{{}}');
INSERT INTO inbox VALUES (11, 's1', '{{"name":"go"}}', 1.0);
INSERT INTO outbox VALUES (12, 's1', 'send', '{{}}', 1.0);
INSERT INTO callbacks VALUES ('c1', 'svc', 'QUEUED', '+1555', 1.0, 2.0, 's1', 1.0, 1.0, '{{"_id":"c1"}}');
INSERT INTO callbacks VALUES ('c0', 'svc', 'COMPLETED', '+1555', 1.0, 2.0, 's0', 0.5, 0.5, '{{"_id":"c0"}}');
INSERT INTO callback_events VALUES (13, 'c1', 'e', '{{"event_id":"e"}}', 1.0);
INSERT INTO subscriptions VALUES ('sub1', '{{"id":"sub1"}}', 99.0);
INSERT INTO deliveries VALUES (14, 'k', 'dead', 3, 0.0, '{{"id": 14}}', 1.0);
INSERT INTO engine_values VALUES ('push.credentials', 'sealed', 3.0)
"""


async def build_old_database(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    postgres = engine.dialect.name == "postgresql"
    sql = OLD_SCHEMA.format(ID="BIGINT" if postgres else "INTEGER", VERSION="SERIAL" if postgres else "INTEGER")
    async with engine.begin() as conn:
        for statement in sql.split(";"):
            await conn.execute(text(statement))
    await engine.dispose()


async def test_an_old_database_opens_as_migrated_and_reads_back(db_url: str) -> None:
    await build_old_database(db_url)
    store = await persistence.open_store(db_url)
    try:
        async with store.engine.connect() as conn:
            recorded = (await conn.execute(text("select version, applied_at from schema_migrations"))).all()
        # none re-applied; only migrations 5 (the callbacks' flat-cost indexes), 6 (the callbacks'
        # history), 7 (the cluster tables and partition columns), 8 (the cluster's shared configuration)
        # 9 (events and history keyed by the callback's serial) and 10 (events a batch per row) are new to it
        assert sorted(map(tuple, recorded))[:4] == [(1, 100.5), (2, 100.5), (3, 100.5), (4, 100.5)]
        assert sorted(v for v, _ in recorded if v > 4) == [5, 6, 7, 8, 9, 10]
        assert store.new_id() == 15  # past the largest inbox, outbox, event and delivery id
        assert [f["name"] for f in await session_rows.load_flow_versions(store)] == ["hello"]
        assert [s["id"] for s in await session_rows.load_running(store)] == ["s1"]
        assert [(r["id"], r["event"]) for r in await session_rows.load_inbox(store)] == [(11, '{"name":"go"}')]
        assert [r["id"] for r in await session_rows.load_outbox(store)] == [12]
        assert await callback_rows.load_open(store) == [{"_id": "c1"}]
        assert [e["name"] for e in await event_groups.events_of(store, "c1")] == ["e"]
        assert [s["id"] for s in await notification_rows.load_subscriptions(store)] == ["sub1"]
        assert [d["status"] for d in await notification_rows.load_deliveries(store)] == ["dead"]
        assert await store.get_value("push.credentials") == "sealed"
        # ...and it takes new writes: an upsert of an old row, a new sequenced row.
        unit = UnitOfWork()
        unit.add(session_rows.SESSIONS, [{"id": "s1", "flow": "hello", "flow_hash": "h1", "flow_version": 1,
                                          "status": "finished", "parent_id": None, "created_at": 1.0,
                                          "updated_at": 3.0, "snapshot": "{}"}])
        unit.add(session_rows.INBOX, [{"id": store.new_id(), "session_id": "s1", "event": "{}", "created_at": 3.0}])
        unit.delete(session_rows.INBOX, [11])
        await store.write(unit)
        assert await session_rows.stored_status(store, "s1") == "finished"
        assert [r["id"] for r in await session_rows.load_inbox(store)] == [16]
        counts = await persistence.purge(store, 10.0)
        assert counts == {"sessions": 2, "callbacks": 1, "callback_events": 0, "dead_letters": 1}
    finally:
        await store.close()


def _normalized(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).replace("( ", "(").replace(" )", ")").replace(", ", ",").strip().lower()


async def test_a_new_sqlite_database_gets_exactly_the_old_tables(tmp_path) -> None:
    """The tables the domains now declare are the ones the old code made, column for column."""
    old_url, new_url = (f"sqlite+aiosqlite:///{tmp_path / name}" for name in ("old.db", "new.db"))
    await build_old_database(old_url)
    await (await persistence.open_store(new_url)).close()
    schemas = []
    for url in (old_url, new_url):
        store = await persistence.open_store(url)
        try:
            async with store.engine.connect() as conn:
                rows = (await conn.execute(text("select name, sql from sqlite_master where sql is not null"))).all()
            schemas.append({name: _normalized(sql) for name, sql in rows})
        finally:
            await store.close()
    assert schemas[0] == schemas[1]
    # 20 tables and 16 indexes (migration 5: three callback indexes for one; 6: callback_history and its
    # index; 7: five cluster tables and three indexes, the partition indexes being PostgreSQL's only;
    # 8: four shared-configuration tables and an index, the flow versions' unique one PostgreSQL's only;
    # 9: the events' and history's index by callback id each replaced by two, by serial and unserialed;
    # 10: the events' table and its two indexes replaced by callback_event_groups and its two, and a
    # view of the old table's name)
    assert len(schemas[0]) == 37
