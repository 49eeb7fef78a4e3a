"""Indexes of the live callback records that the console's polled reads need (queues, call-ins),
made on first use and kept in step by the callback service from then on (``add_index``), so a read
costs what it shows, not a scan of every live record. In a cluster they hold this node's partitions
only: the views add the other nodes' callbacks from the database (``cluster_reads``)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any
from weakref import WeakKeyDictionary

from ..callbacks.record_index import RecordIndex
from ..callbacks.service import CallbackService
from ..callbacks.vocabulary import CallbackState

KeyOf = Callable[[dict[str, Any]], Hashable | None]
_MADE: WeakKeyDictionary[CallbackService, dict[KeyOf, RecordIndex]] = WeakKeyDictionary()
#: The states of a callback whose interaction may wait in its virtual queue (push watches the same).
IN_QUEUE = (CallbackState.QUEUED, CallbackState.ROUTING)
CALL_IN = "call-in"


def index_of(service: CallbackService, key_of: KeyOf) -> RecordIndex:
    """The service's index by ``key_of``, made (from the records in memory) when first asked for."""
    made = _MADE.setdefault(service, {})
    index = made.get(key_of)
    if index is None:
        index = made[key_of] = RecordIndex(key_of)
        service.add_index(index)
    return index


def queue_of(record: dict[str, Any]) -> str | None:
    """The virtual queue a waiting callback is in; None once it left (or before it got there)."""
    return record.get("_urs_virtual_queue") if record["_callback_state"] in IN_QUEUE else None


def call_in_of(record: dict[str, Any]) -> str | None:
    """Open callbacks carrying an access code (click-to-call-in) are in one group."""
    if record["_callback_state"] == CallbackState.COMPLETED or not record.get("_access_code"):
        return None
    return CALL_IN
