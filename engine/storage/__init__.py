"""Durable storage: SQLAlchemy 2 (SQLite with aiosqlite by default, PostgreSQL with asyncpg)."""

from .store import Batch, Store

__all__ = ["Batch", "Store"]
