"""Durable storage: SQLAlchemy 2 (SQLite with aiosqlite by default, PostgreSQL with asyncpg).

Generic: a unit of work per commit, versioned migrations, query helpers and a key/value store.
Each domain declares its own tables and rows (``engine/*/rows.py``)."""

from .migrations import Migration, Schema, creates
from .schema import metadata
from .store import Purger, StorageUnavailable, Store, dumps
from .unit import TableWrite, UnitOfWork

__all__ = ["Migration", "Purger", "Schema", "StorageUnavailable", "Store", "TableWrite", "UnitOfWork",
           "creates", "dumps", "metadata"]
