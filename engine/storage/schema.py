"""Tables. Changing them means adding a migration in ``migrations.py``, never editing one."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

# Every document version any session ran or runs: flows, and documents invoked by them.
flow_versions = Table(
    "flow_versions", metadata,
    Column("hash", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # "flow" or "child"
    Column("text", Text, nullable=False),
    Column("base_dir", Text),
    Column("created_at", Float, nullable=False),
)
Index("ix_flow_versions_name", flow_versions.c.name, flow_versions.c.version)

sessions = Table(
    "sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("flow", String(200), nullable=False),
    Column("flow_hash", String(64), nullable=False),
    Column("flow_version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("parent_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("snapshot", Text, nullable=False),
)
Index("ix_sessions_status", sessions.c.status, sessions.c.flow)

# Events on their way to a session: written with the sender's snapshot, deleted with the
# snapshot of the receiver that holds (or has processed) them.
inbox = Table(
    "inbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("session_id", String(64), nullable=False),
    Column("event", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Effects leaving the engine (HTTP sends, notifications): written with the snapshot of the
# session that caused them, deleted once carried out.
outbox = Table(
    "outbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("session_id", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Callback records (GMS format in ``record``; the columns are what queries filter on).
callbacks = Table(
    "callbacks", metadata,
    Column("id", String(64), primary_key=True),
    Column("service", String(200), nullable=False),
    Column("state", String(16), nullable=False),
    Column("customer_number", String(32), nullable=False),
    Column("desired_time", Float, nullable=False),
    Column("expiration_time", Float, nullable=False),
    Column("session_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("record", Text, nullable=False),
)
Index("ix_callbacks_service_state", callbacks.c.service, callbacks.c.state)
Index("ix_callbacks_customer", callbacks.c.customer_number)
Index("ix_callbacks_desired", callbacks.c.service, callbacks.c.desired_time)

# Status events recorded per callback (flow events and service events).
callback_events = Table(
    "callback_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("callback_id", String(64), nullable=False),
    Column("name", String(100), nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_callback_events_callback", callback_events.c.callback_id, callback_events.c.id)

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

# Small engine-wide values (the sealed FCM credentials).
engine_values = Table(
    "engine_values", metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
