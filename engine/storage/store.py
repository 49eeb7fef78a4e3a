"""The store: one transaction per unit of work, and the small query helpers every domain uses.

It knows no domain: the tables, their migrations and how they are written come from the
domains' ``Schema`` objects handed to ``Store.open`` (``engine/persistence.py`` gathers them).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Executable, Select, bindparam, delete, event, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from . import fence, schema
from .errors import StorageUnavailable
from .migrations import Schema, migrate, ordered
from .sqlite_writer import SqliteWriter, Step, tune
from .unit import TableWrite, UnitOfWork

log = logging.getLogger("engine.storage")

#: A domain's retention step: delete what ended before the cutoff (epoch seconds) in the given
#: transaction, and say how many rows of each kind went.
Purger = Callable[[AsyncConnection, float], Awaitable[dict[str, int]]]

_VALUES = TableWrite(schema.engine_values, replace=("value", "updated_at"))
_NOTIFY = "SELECT pg_notify($1, $2)"

#: A cluster node mints the ids ``counter * SLOTS + slot``: every node its own slot, so nodes
#: writing one database never mint the same id, and ids still grow with time on every node.
SLOTS = 1024

__all__ = ["SLOTS", "Purger", "StorageUnavailable", "Store", "dumps"]


_FALLBACK = json.JSONEncoder(separators=(",", ":"), allow_nan=True)


def dumps(value: Any) -> str:
    """Compact JSON, by orjson: a tenth of the standard encoder's cost, and every snapshot, record
    and recorded event is dumped. Where orjson refuses (an integer beyond 64 bits, a key that is
    not a string) the standard encoder writes the value as it always did. A NaN or infinity
    becomes null, as ECMAScript's ``JSON.stringify`` has it; records refuse them
    (``check_storable``) and snapshots tag them first (``encode_value``), so no state loses one."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _FALLBACK.encode(value)


def _tuples(rows: list[dict[str, Any]], names: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Each row's values in the order of ``names``, a column the row leaves out as None.

    One ``itemgetter`` per row (made once per column list) is a fifth of the cost of
    ``tuple(map(row.get, names))``, and some twenty-five rows per callback go this way; a row
    that leaves a column out (its default is NULL) sends the batch the slower way."""
    getter = _GETTERS.get(names)
    if getter is None:
        getter = _GETTERS[names] = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    try:
        return list(map(getter, rows))
    except KeyError:
        return [tuple(map(row.get, names)) for row in rows]


_GETTERS: dict[tuple[str, ...], Callable[[dict[str, Any]], tuple[Any, ...]]] = {}


class Store:
    """Async access to the database; every method is one transaction."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._next_id = 1
        self._id_step = 1  # SLOTS once a cluster slot is taken (use_slot)
        self._slot = 0
        self._sequenced: list[Any] = []  # the tables whose keys come from new_id
        self._statements: dict[TableWrite, Executable] = {}  # built once per table, not per commit
        # ...and compiled once, to the driver's own SQL and the order of its parameters.
        self._prepared: dict[tuple[TableWrite, str], tuple[str, tuple[str, ...]]] = {}
        self._sqlite: SqliteWriter | None = None  # units of work on a SQLite file: one hop each

    @classmethod
    async def open(cls, url: str, schemas: Sequence[Schema] = ()) -> Store:
        """Connect, tune SQLite (WAL), apply the migrations of ``schemas`` (and storage's own)
        and seed the id sequence past the largest key of every sequenced table."""
        migrations = ordered(schemas)
        path = ""
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_async_engine(url)
        if engine.dialect.name == "sqlite":
            @event.listens_for(engine.sync_engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                tune(cur)  # as the unit-of-work writer's connection (WAL, synchronous=NORMAL, ...)
                cur.close()

        store = cls(engine)
        if engine.dialect.name == "sqlite" and path and path != ":memory:" and "?" not in path:
            store._sqlite = SqliteWriter(os.path.abspath(path))
        store._sequenced = [w.table for sch in schemas for w in sch.writes if w.sequenced]
        async with engine.begin() as conn:
            applied = await conn.run_sync(migrate, migrations)
            top = await store._top_id(conn)
        store._next_id = top + 1
        if applied:
            log.info("schema migrated to version %d", applied[-1])
        return store

    async def close(self) -> None:
        if self._sqlite is not None:
            await self._sqlite.close()
        await self.engine.dispose()

    def new_id(self) -> int:
        value = self._next_id
        self._next_id += self._id_step
        return value

    def id_mark(self) -> int:
        """The next id ``new_id`` gives: a reader that took its view of memory at this mark leaves
        out the rows minted since (``minted_since``), which that view cannot account for."""
        return self._next_id

    def minted_since(self, mark: int, value: int) -> bool:
        """Whether ``value`` is an id this store gave at or after ``mark`` (an ``id_mark``); ids
        other cluster nodes mint fall between ours and are never counted."""
        return value >= mark and (value - mark) % self._id_step == 0

    def as_of(self, mark: int, stored: list[dict[str, Any]], unwritten: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows as they were when ``mark`` was taken, by id: ``unwritten``, the rows memory held
        then (a row leaves memory only once it is committed, so none falls between), and the
        ``stored`` ones read after it but minted before it; a row both in memory and stored (its
        batch committed during the read) counts once."""
        kept = [r for r in stored if not self.minted_since(mark, r["id"])]
        seen = {r["id"] for r in kept}
        return sorted(kept + [r for r in unwritten if r["id"] not in seen], key=_ROW_ID)

    async def _top_id(self, conn: AsyncConnection) -> int:
        """The largest key of every sequenced table."""
        top = 0
        for table in self._sequenced:
            key = table.primary_key.columns.values()[0]
            top = max(top, (await conn.execute(select(func.max(key)))).scalar() or 0)
        return top

    async def use_slot(self, slot: int) -> None:
        """Mint ids in ``slot`` from now on (a cluster node's, leased with its node row), past
        every id already stored."""
        if not 0 <= slot < SLOTS:
            raise ValueError(f"no id slot {slot}")
        counter = -(-self._next_id // SLOTS)  # past any id minted before (ceiling division)
        self._id_step, self._slot = SLOTS, slot
        self._next_id = counter * SLOTS + slot
        await self.reseed()

    async def reseed(self) -> None:
        """Move the id sequence past every id stored now (a node does after each claim of
        partitions), so the ids it mints follow the whole history of what it took over: rows of one
        ordering key stay in id order across a failover. Never moves it back."""
        async with self.engine.connect() as conn:
            top = await self._top_id(conn)
        if self._id_step == 1:
            self._next_id = max(self._next_id, top + 1)
        else:
            counter = max(top // SLOTS + 1, (self._next_id - self._slot) // SLOTS)
            self._next_id = counter * SLOTS + self._slot

    # -- writing ---------------------------------------------------------------------------
    def _statement(self, target: TableWrite) -> Executable:
        stmt = self._statements.get(target)
        if stmt is None:
            if target.replace is None and not target.keep_existing:
                stmt = target.table.insert()
            else:
                if self.dialect == "postgresql":
                    from sqlalchemy.dialects.postgresql import insert
                else:
                    from sqlalchemy.dialects.sqlite import insert
                ins = insert(target.table)
                if target.keep_existing:
                    stmt = ins.on_conflict_do_nothing(index_elements=[target.key])
                else:
                    guard = None
                    if target.guard is not None:
                        guard = target.table.c[target.guard] <= ins.excluded[target.guard]
                    stmt = ins.on_conflict_do_update(index_elements=[target.key], where=guard,
                                                     set_={c: ins.excluded[c] for c in target.replace or ()})
            self._statements[target] = stmt
        return stmt

    def _steps(self, unit: UnitOfWork) -> list[Step]:
        """``unit`` as the driver's statements and parameter tuples, in the order ``write`` keeps."""
        steps: list[Step] = []
        for target, rows in unit.upserts.items():
            if rows:
                sql, names = self._driver_sql(target, "write")
                steps.append((sql, _tuples(rows, names)))
        if unit.values:
            now = time.time()
            sql, names = self._driver_sql(_VALUES, "write")
            values = [{"key": k, "value": v, "updated_at": now} for k, v in unit.values.items()]
            steps.append((sql, [tuple(row[n] for n in names) for row in values]))
        for target, keys in unit.deletes.items():
            if keys:
                sql, _names = self._driver_sql(target, "delete")
                steps.append((sql, [(key,) for key in keys]))
        return steps

    def _driver_sql(self, target: TableWrite, kind: str) -> tuple[str, tuple[str, ...]]:
        """``target``'s write (``"write"``) or delete-by-key (``"delete"``) statement as the
        driver's SQL, with the names of its parameters in order. Compiled once: handing the
        driver plain tuples skips SQLAlchemy's per-row parameter processing, which cost more
        than the database's own work for the small rows of a batch."""
        found = self._prepared.get((target, kind))
        if found is None:
            if kind == "write":
                stmt: Any = self._statement(target)
            else:
                stmt = delete(target.table).where(target.table.c[target.key] == bindparam(target.key))
            compiled = stmt.compile(dialect=self.engine.dialect)
            names = tuple(compiled.positiontup or ())
            if not names:
                raise RuntimeError(f"the {self.dialect} driver does not take positional parameters")
            found = self._prepared[(target, kind)] = (compiled.string, names)
        return found

    async def write(self, unit: UnitOfWork) -> None:
        """Write ``unit`` atomically: every table's rows, then engine values, then deletions."""
        if self._sqlite is not None:
            if unit.fence is not None or unit.notify:
                raise ValueError("a SQLite engine is one process: it neither fences nor notifies")
            try:
                await self._sqlite.write(self._steps(unit))
            except sqlite3.Error as e:  # the same exceptions as the other path raises
                raise DBAPIError.instance("(unit of work)", None, e, sqlite3.Error) from e
            return
        async with self.engine.begin() as conn:
            if unit.fence is not None:  # first, in the same transaction (engine/storage/fence.py)
                await fence.check(conn, unit.fence)
            if unit.notify:  # delivered by PostgreSQL when (and only if) the transaction commits
                await conn.exec_driver_sql(_NOTIFY, unit.notify)
            for sql, rows in self._steps(unit):
                await conn.exec_driver_sql(sql, rows)

    # -- reading ---------------------------------------------------------------------------
    async def fetch_all(self, query: Select) -> list[dict[str, Any]]:
        """Every row of ``query`` as a dict (column name -> value)."""
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def fetch_one(self, query: Select) -> dict[str, Any] | None:
        """The first row of ``query`` as a dict, or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
            return dict(row._mapping) if row is not None else None

    async def rows_where(self, table: Any, *where: Any, order_by: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """``SELECT * FROM table WHERE ... ORDER BY ...`` as dicts."""
        return await self.fetch_all(select(table).where(*where).order_by(*order_by))

    # -- retention -------------------------------------------------------------------------
    async def purge(self, cutoff: float, purgers: Iterable[Purger]) -> dict[str, int]:
        """Run every domain's retention step in one transaction; their counts merged."""
        counts: dict[str, int] = {}
        async with self.engine.begin() as conn:
            for purger in purgers:
                counts.update(await purger(conn, cutoff))
        return counts

    # -- engine values ---------------------------------------------------------------------
    async def get_value(self, key: str) -> str | None:
        t = schema.engine_values
        found = await self.fetch_one(select(t.c.value).where(t.c.key == key))
        return found["value"] if found else None

    async def put_value(self, key: str, value: str, updated_at: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(self._statement(_VALUES), [{"key": key, "value": value, "updated_at": updated_at}])


_ROW_ID = itemgetter("id")
