"""The tables storage itself owns; every other table belongs to a domain (``engine/*/rows.py``)
and is declared on the same ``metadata``. Changing a table means adding a migration, never
editing one."""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

# Small engine-wide values (the sealed FCM credentials, the simulated clock): the generic
# key/value store of ``UnitOfWork.values`` and ``Store.get_value``/``put_value``.
engine_values = Table(
    "engine_values", metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
