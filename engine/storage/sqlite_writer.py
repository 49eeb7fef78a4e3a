"""The writer of units of work on SQLite: one thread, one connection, one hop per unit.

Through SQLAlchemy's aiosqlite adapter, a unit of ten statements crosses to aiosqlite's thread
some thirty times (cursor, execute, close, begin, commit), and each crossing costs the event
loop a future, a queue put and a wake-up: on the callback benchmark that was an eighth of the
engine's main thread, more than the database's own work. Here the whole unit (``BEGIN
IMMEDIATE``, an ``executemany`` per table, ``COMMIT``) runs in this writer's thread in one call.

It is a second connection to the same file, tuned like the pool's (WAL, ``synchronous=NORMAL``,
busy timeout), so the engine's other writes (engine values, flows, retention) go on through
SQLAlchemy and SQLite serializes the two; a unit waits for the write lock like any writer.
PostgreSQL needs none of this: asyncpg sends an ``executemany`` as one pipelined round trip.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

#: One statement of a unit: the driver's SQL and the parameter tuples it is executed with.
Step = tuple[str, Sequence[tuple[Any, ...]]]

#: WAL pages after which a commit checkpoints (SQLite's default is 1,000; a page is 4 KiB).
#: A checkpoint copies every page the WAL holds back into the database file once, however often
#: it was written since: the same hot pages (index leaves of the live callbacks, the tail of the
#: event tables) were copied ten times as often at the default, a fifth of the writer's CPU on
#: the callback benchmark. The WAL stays bounded: a commit past this size checkpoints (in full,
#: in the writer's own commit, so the next one starts the WAL over), and ``journal_size_limit``
#: trims a WAL file that a long read let grow beyond it.
CHECKPOINT_PAGES = 10_000


def tune(conn: Any, busy_timeout_ms: int = 5000) -> None:
    """The settings every connection to an engine's SQLite file runs with (a DB-API connection
    or cursor): WAL, ``synchronous=NORMAL``, the busy timeout and the checkpoint size."""
    conn.execute("PRAGMA journal_mode=WAL")
    # Committed transactions survive a process crash (kill -9) with NORMAL in WAL mode.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit={CHECKPOINT_PAGES * 4096 * 2}")


class SqliteWriter:
    def __init__(self, path: str, busy_timeout_ms: int = 5000):
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._path = path
        self._busy = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:  # made in the writer's thread, used only there
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            tune(conn, self._busy)
            self._conn = conn
        return self._conn

    def _apply(self, steps: Sequence[Step]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # the write lock first: waits (busy timeout) like any writer
        try:
            for sql, rows in steps:
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT (disk full) leaves it open
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise

    async def write(self, steps: Sequence[Step]) -> None:
        """Run ``steps`` in one transaction, all or nothing."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._apply, steps)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)
