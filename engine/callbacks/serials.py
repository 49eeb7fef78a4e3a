"""Each callback's serial number, and the reads and deletes by callback that go through it.

Why: a callback's status events and history rows were indexed by ``(callback_id, id)``, and the
id is random, so every commit (one per dozen callbacks) dirtied one random page of each of those
indexes per callback it wrote for: half of the bytes SQLite's WAL took on ``bench/callbacks.py``.
A serial is a number from the store's id sequence given at create (``Store.new_id``, unique in a
cluster too), so callbacks alive at the same time have neighbouring serials and the
``(callback_serial, id)`` indexes are written near their end. The callback's row holds its serial;
each event and history row carries it. A row whose writer did not know it (a delivery attempt for
a callback no longer in memory) carries NULL and is found through a partial index on
``(callback_id, id)`` that holds such rows only; a query by callback reads both ranges.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import CompoundSelect, Select, Table, column, delete, select, table, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from ..storage import Store

#: The two columns of the callbacks table a query by callback needs (that table is declared by
#: ``rows``, which imports the history module: this keeps the imports one way).
_CALLBACKS = table("callbacks", column("id"), column("serial"))


class CallbackSerials:
    """The serials of the callbacks this process writes rows for: every open one (``open_records``,
    the service's records by id) and the ``recent`` last others (a completed callback still
    reports: its last events and delivery attempts). What it no longer knows is written with NULL."""

    def __init__(self, store: Store | None, open_records: Mapping[str, Any], recent: int = 10_000):
        """Serials come from ``store``'s id sequence (from 1 up without a store, where nothing reads them)."""
        self._mint = store.new_id if store is not None else itertools.count(1).__next__
        self._open = open_records
        self._recent = recent
        self._serials: dict[str, int] = {}
        self._limit = 2 * recent

    def new(self, callback_id: str) -> int:
        """A serial for a callback made now."""
        serial = self._mint()
        self.learn(callback_id, serial)
        return serial

    def learn(self, callback_id: str, serial: int | None) -> None:
        """The stored serial of a callback loaded from the database."""
        if serial is None:
            return
        self._serials[callback_id] = serial
        if len(self._serials) > self._limit:
            self._sweep()

    def of(self, callback_id: str) -> int | None:
        return self._serials.get(callback_id)

    def _sweep(self) -> None:
        """Keep the open callbacks' serials and the ``recent`` last learnt; the next sweep waits
        until the table has doubled again, so a sweep costs O(1) per serial learnt."""
        items = list(self._serials.items())
        cut = max(0, len(items) - self._recent)
        kept = {cid: serial for cid, serial in items[:cut] if cid in self._open}
        kept.update(items[cut:])
        self._serials = kept
        self._limit = 2 * len(kept) + self._recent


def rows_of(t: Table, callback_id: str) -> CompoundSelect:
    """``t``'s rows of one callback, oldest (lowest id) first: the range of its serial (looked up
    by the callback's key) and the range of its rows written without one."""
    serial = select(_CALLBACKS.c.serial).where(_CALLBACKS.c.id == callback_id).scalar_subquery()
    keyed = select(t).where(t.c.callback_serial == serial, t.c.callback_id == callback_id)
    unkeyed = select(t).where(t.c.callback_serial.is_(None), t.c.callback_id == callback_id)
    return union_all(keyed, unkeyed).order_by(t.c.id)


def halves_of(t: Table, callbacks: Select[Any], callback_ids: Select[Any]) -> tuple[tuple[Any, ...], ...]:
    """The conditions on ``t``'s rows of some callbacks, one per index range: ``callbacks`` selects
    their serials and ``callback_ids`` their ids (the same callbacks). A serial is unique, the id
    check only keeps a row that somehow shares one."""
    return ((t.c.callback_serial.in_(callbacks), t.c.callback_id.in_(callback_ids)),
            (t.c.callback_serial.is_(None), t.c.callback_id.in_(callback_ids)))


async def delete_of(conn: AsyncConnection, t: Table, callbacks: Select[Any], callback_ids: Select[Any]) -> int:
    """Delete ``t``'s rows of some callbacks (``halves_of``'s arguments); how many rows went."""
    gone = 0
    for where in halves_of(t, callbacks, callback_ids):
        gone += (await conn.execute(delete(t).where(*where))).rowcount
    return gone
