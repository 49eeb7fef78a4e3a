"""A callback's history: its state changes and the attempts of its deliveries and pushes.

Why a table of its own: the record holds only its current state, a delivered notification's row
is deleted, and a push leaves no trace; the console's detail page must still tell how a callback
got where it is. One small row per fact (a state change, a delivery or push attempt), keyed by
the callback, written in the same unit of work as the change it describes (so a crash keeps both
or neither), never an extra commit. The retention purge removes it with its callback.

Each writer (the callback service for state changes, the dispatcher for attempts) holds a
``HistoryLog`` whose rows go out with the session manager's next batch. No device token, webhook
secret or URL credential is written: targets are reduced by ``public_target``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import BigInteger, Column, Float, Integer, Select, String, Table, Text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..ids import partition_of
from ..storage import Migration, Store, TableWrite, UnitOfWork, creates, dumps, metadata
from . import serials

STATE, DELIVERY, PUSH = "state", "delivery", "push"
# What caused a state change.
API_CREATE, API_CANCEL, API_RESCHEDULE = "api create", "api cancel", "api reschedule"
FLOW, TIMER_SUBMIT, TIMER_TTL, TIMER_PURGE, RESTART = "flow", "timer submit", "timer ttl", "timer purge", "restart"
# What one attempt came to.
DELIVERED, RETRY, DEAD = "delivered", "retry", "dead"
MAX_ROWS_IN_MEMORY = 1000  # per callback, without a store (as for its status events)
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
_memory_ids = itertools.count(1)

callback_history = Table(
    "callback_history", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("callback_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", Float, nullable=False),
    Column("data", Text, nullable=False),
    Column("callback_serial", BigInteger),  # the callback's serial; NULL: not known to the writer
)
# Indexed by (callback_serial, id), and (callback_id, id) where the serial is NULL: migration 9.

CALLBACK_HISTORY = TableWrite(callback_history, sequenced=True)
MIGRATION = Migration(6, "callback history: state changes, delivery and push attempts", creates(callback_history))


class HistoryLog:
    """History rows of one writer, on their way to the next batch (kept in memory without a store)."""

    def __init__(self, store: Store | None, request_write: Callable[[], None], clock: Callable[[], float],
                 partitioned: bool = False, serial_of: Callable[[str], int | None] = lambda _cid: None):
        """``clock``: the engine clock's now (the record's times are on it too). ``partitioned``
        (a cluster node): each row carries its callback's partition, which fences its write.
        ``serial_of``: a callback's serial (``CallbackSerials.of``), None where not known."""
        self.store = store
        self.serial_of = serial_of
        self.partitioned = partitioned
        self.request_write = request_write
        self.clock = clock
        self.new: list[dict[str, Any]] = []
        self.writing: list[dict[str, Any]] = []  # in the batch being written: still shown from here
        self.kept: dict[str, list[dict[str, Any]]] = {}  # without a store only

    def add(self, callback_id: str, kind: str, data: dict[str, Any]) -> None:
        row = {"id": self.store.new_id() if self.store is not None else next(_memory_ids),
               "callback_id": callback_id, "kind": kind, "at": self.clock(), "data": dumps(data),
               "callback_serial": self.serial_of(callback_id)}
        if self.partitioned:
            row["part"] = partition_of(callback_id)
        if self.store is None:
            rows = self.kept.setdefault(callback_id, [])
            if len(rows) < MAX_ROWS_IN_MEMORY:
                rows.append(row)
            return
        self.new.append(row)
        self.request_write()

    def contribute(self, batch: UnitOfWork) -> None:
        """A batch contributor: the rows written with the change they describe."""
        if self.new:
            batch.add(CALLBACK_HISTORY, self.new)
            self.writing, self.new = self.new, []

    def drop(self, partitions: set[int]) -> None:
        """Forget the unwritten rows of callbacks in ``partitions`` (this node lost them)."""
        self.new = [r for r in self.new if r.get("part") not in partitions]

    def written(self) -> None:
        """An after-commit hook: the rows of the batch just written are in the store now."""
        self.writing = []

    def unwritten(self, callback_id: str) -> list[dict[str, Any]]:
        """Rows of ``callback_id`` that may not be in the store yet (or no store); the caller drops
        those it also read from the store."""
        return [r for r in (*self.writing, *self.new) if r["callback_id"] == callback_id] + \
            self.kept.get(callback_id, [])

    def state_changed(self, callback_id: str, from_state: str | None, to_state: str, reason: str | None,
                      source: str, detail: str | None = None) -> None:
        data: dict[str, Any] = {"from": from_state, "to": to_state, "reason": reason, "source": source}
        if detail:
            data["detail"] = detail
        self.add(callback_id, STATE, data)


async def stored(store: Store, callback_id: str) -> list[dict[str, Any]]:
    """A callback's stored history rows, oldest first (two ranges of the indexes)."""
    return await store.fetch_all(serials.rows_of(callback_history, callback_id))  # type: ignore[arg-type]


async def purge_of(conn: AsyncConnection, their_serials: Select[Any], their_ids: Select[Any]) -> int:
    """Delete the history of some callbacks (sub-selects of their serials and of their ids, the
    same callbacks); how many rows went."""
    return await serials.delete_of(conn, callback_history, their_serials, their_ids)


# -- what an attempt row holds ----------------------------------------------------------------
def attempt(delivery_id: int, kind_of_delivery: str, event: str | None, target: str, result: str,
            status: int | None, error: str) -> dict[str, Any]:
    """The data of one attempt row; ``target`` already reduced by ``public_target``."""
    return {"delivery": delivery_id, "type": kind_of_delivery, "event": event, "target": target,
            "result": result, "status": status, "error": error}


def http_status(error: str) -> int | None:
    """The HTTP status a failure's text names (``HTTP 500``, ``FCM answered HTTP 404 ...``)."""
    found = _HTTP_STATUS.search(error)
    return int(found.group(1)) if found else None


def masked_token(token: str) -> str:
    """A device token as the history shows it: its last four characters."""
    return "…" + token[-4:] if len(token) > 8 else "…"


def public_target(kind_of_delivery: str, target: str) -> str:
    """A target without what may be secret: a device token masked, a URL without its user,
    password, query or fragment (where webhook keys are sometimes put)."""
    if kind_of_delivery == "fcm":
        return masked_token(target)
    if kind_of_delivery in ("httpcb", "customhttp"):
        try:
            parts = urlsplit(target)
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            return "(unreadable URL)"
        host = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{host}{port}{parts.path}"
    return target


def scrub(error: str, secret: str) -> str:
    """``error`` with ``secret`` (a device token, a URL) masked, should a library have quoted it."""
    return error.replace(secret, masked_token(secret)) if secret and len(secret) > 8 else error


# -- the answer --------------------------------------------------------------------------------
def timeline(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """State rows as the timeline: ``at`` (epoch), ``state``, ``from``, ``reason``, ``source``."""
    out = []
    for row in rows:
        if row["kind"] != STATE:
            continue
        data = json.loads(row["data"])
        item = {"at": row["at"], "state": data["to"], "from": data.get("from"), "reason": data.get("reason"),
                "source": data.get("source")}
        if data.get("detail"):
            item["detail"] = data["detail"]
        out.append(item)
    return out


def attempts_by_delivery(rows: Iterable[dict[str, Any]], kind: str) -> dict[int, dict[str, Any]]:
    """Attempt rows of ``kind`` (DELIVERY or PUSH) grouped per delivery, in the order first seen:
    each with ``id``, ``type``, ``event``, ``target``, ``status`` (the last attempt's
    outcome: delivered, dead, or pending while retried) and its ``attempts``."""
    found: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row["kind"] != kind:
            continue
        data = json.loads(row["data"])
        entry = found.get(data["delivery"])
        if entry is None:
            entry = found[data["delivery"]] = {
                "id": data["delivery"], "type": data["type"], "event": data.get("event"), "target": data["target"],
                "attempts": []}
        entry["attempts"].append({"at": row["at"], "result": data["result"], "status": data.get("status"),
                                  "error": data.get("error") or ""})
        entry["status"] = {DELIVERED: "delivered", DEAD: "dead"}.get(data["result"], "pending")
    return found
