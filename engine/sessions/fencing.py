"""A batch of the session manager in a cluster (issue 14): which partitions it writes, and what is
left of it once some of them turned out to be another node's.

Every row a batch writes to a partitioned table carries ``"part"``. A row of a partition this node
does not hold is allowed only as a *handoff*: an insert whose ``taken_epoch`` is None (an event for
another node's session, a delivery of another node's callback), which that node takes on the
notification the batch sends. Any row may carry ``"_from"``, the partition whose state made it
(an event's sender): it is dropped with that partition, or handed over when only its own
partition was lost. Extra keys of a row are not written (the store writes its table's columns).
Deletes of partitioned rows are told with their partitions (``DeleteParts``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from ..storage import TableWrite, UnitOfWork

log = logging.getLogger("engine.sessions")

FROM = "_from"
#: Who is woken, per table, when a batch hands rows of it over to another node (payload: partition).
HANDOFF_CHANNELS = {"inbox": "cbe_inbox", "deliveries": "cbe_deliveries"}
#: table -> key -> partition, for the deletes of one batch.
DeleteParts = dict[TableWrite, dict[Any, int]]


def is_handoff(row: Mapping[str, Any]) -> bool:
    return "taken_epoch" in row and row["taken_epoch"] is None


def confine(unit: UnitOfWork, held: Collection[int], deletes: DeleteParts) -> set[int]:
    """Keep in ``unit`` only what this node may write while it holds ``held``; set its notify for
    the handoffs; return the partitions its fence must cover."""
    written: set[int] = set()
    woken: set[tuple[str, str]] = set()
    for target, rows in unit.upserts.items():
        if not any("part" in row for row in rows):
            continue
        kept = []
        for row in rows:
            part = row.get("part")
            origin = row.get(FROM)
            if origin is not None and origin not in held:
                continue  # its maker's state is not this node's to write any more
            if part is None or (part in held and not is_handoff(row)):
                if part is not None:
                    written.add(part)
                kept.append(row)
            elif is_handoff(row):
                channel = HANDOFF_CHANNELS.get(target.table.name)
                if channel is not None:
                    woken.add((channel, str(part)))
                kept.append(row)
            else:
                log.debug("a %s row of partition %s is left out: this node does not hold it", target.table.name, part)
        rows[:] = kept
    for target, parts in deletes.items():
        keys = unit.deletes.get(target)
        if not keys:
            continue
        keys[:] = [k for k in keys if parts.get(k) is None or parts[k] in held]
        written.update(p for k in keys if (p := parts.get(k)) is not None)
    unit.notify.extend(sorted(woken))
    return written


def strip(unit: UnitOfWork, lost: Collection[int], deletes: DeleteParts) -> None:
    """Take out of ``unit`` what the fence refused: the rows and deletes of ``lost``. A row made by
    a partition still held for one that was lost (an event to a session that moved) is handed over
    instead: that partition's new holder takes it."""
    for target, rows in unit.upserts.items():
        moved: set[int] = set()
        rows[:] = drop_rows(rows, lost, moved)
        channel = HANDOFF_CHANNELS.get(target.table.name)
        if channel is not None:
            unit.notify.extend((channel, str(p)) for p in sorted(moved) if (channel, str(p)) not in unit.notify)
    for target, parts in deletes.items():
        keys = unit.deletes.get(target)
        if keys:
            keys[:] = [k for k in keys if parts.get(k) not in lost]


def drop_rows(rows: list[dict[str, Any]], lost: Collection[int], moved: set[int] | None = None) -> list[dict[str, Any]]:
    """``rows`` without those of ``lost`` partitions or made by them; an insert made by another
    partition for a lost one becomes a handoff (its partition added to ``moved``)."""
    kept = []
    for row in rows:
        part, origin = row.get("part"), row.get(FROM)
        if origin is not None and origin in lost:
            continue
        if part is not None and part in lost and not is_handoff(row):
            if origin is None or "taken_epoch" not in row:
                continue
            row["taken_epoch"] = None
            if moved is not None:
                moved.add(part)
        kept.append(row)
    return kept


def partitions_of(unit: UnitOfWork, deletes: DeleteParts) -> set[int]:
    """The partitions ``unit`` writes (handoffs excepted): what its fence covers."""
    found = {row["part"] for rows in unit.upserts.values() for row in rows
             if row.get("part") is not None and not is_handoff(row)}
    for target, parts in deletes.items():
        found.update(p for k in unit.deletes.get(target, ()) if (p := parts.get(k)) is not None)
    return found
