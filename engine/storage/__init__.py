"""Durable storage: SQLAlchemy 2 (SQLite with aiosqlite by default, PostgreSQL with asyncpg).

Generic: a unit of work per commit, versioned migrations, query helpers and a key/value store.
Each domain declares its own tables and rows (``engine/*/rows.py``)."""

from .errors import StorageUnavailable
from .fence import Fence, Fenced
from .key_check import KeyMismatch, check_secret_key
from .migrations import Migration, Schema, creates
from .pg_ssl_request import observe_ssl_answers
from .pg_sslmode import accept_libpq_sslmode
from .schema import metadata
from .store import SLOTS, Purger, Store, dumps
from .unit import TableWrite, UnitOfWork

# Before any PostgreSQL engine connects (every store, the cluster's listener and heartbeat):
# libpq's sslmode in the URL reaches asyncpg, and a connect abandoned during its SSL request
# leaves no orphaned future for asyncio to log at ERROR.
accept_libpq_sslmode()
observe_ssl_answers()

__all__ = ["SLOTS", "Fence", "Fenced", "KeyMismatch", "Migration", "Purger", "Schema", "StorageUnavailable", "Store",
           "TableWrite", "UnitOfWork", "check_secret_key", "creates", "dumps", "metadata"]
