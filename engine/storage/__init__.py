"""Durable storage: SQLAlchemy 2 (SQLite with aiosqlite by default, PostgreSQL with asyncpg)."""

from .store import Batch, StorageUnavailable, Store

__all__ = ["Batch", "StorageUnavailable", "Store"]
