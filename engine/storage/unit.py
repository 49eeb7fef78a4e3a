"""The unit of work: what one commit writes, table by table, without knowing any domain.

A domain declares how each of its tables is written (``TableWrite``: the key, the columns an
upsert replaces, or insert-only) and adds whole lists of rows to a unit; the store writes a unit
in one transaction. Rows are plain dicts keyed by column name, so the hot path (one snapshot row
per dirty session) costs no more than a list append.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from .fence import Fence


@dataclass(frozen=True, eq=False)
class TableWrite:
    """How a unit of work writes one table.

    ``replace``: the columns an upsert replaces when the key exists (the others keep what the
    first write gave them); ``None`` means insert-only, a duplicate key failing the whole unit.
    ``keep_existing``: insert, and silently keep the row already there (content-addressed rows).
    ``sequenced``: the integer key comes from ``Store.new_id``, so the store seeds that sequence
    past this table's largest key when it opens.
    ``guard``: a column an upsert never lets go back (a session's lease epoch): a row whose value
    is below the stored one changes nothing, the defence in depth behind a cluster's fence."""

    table: Table
    replace: tuple[str, ...] | None = None
    keep_existing: bool = False
    sequenced: bool = False
    guard: str | None = None
    key: str = field(init=False)

    def __post_init__(self) -> None:
        keys = [c.name for c in self.table.primary_key.columns]
        if len(keys) != 1:
            raise ValueError(f"table {self.table.name}: a unit of work needs a one-column key, not {keys}")
        if self.replace is not None and self.keep_existing:
            raise ValueError(f"table {self.table.name}: an upsert cannot also keep the existing row")
        unknown = set(self.replace or ()) - set(self.table.c.keys())
        if unknown:
            raise ValueError(f"table {self.table.name}: no columns {sorted(unknown)}")
        if self.guard is not None and (self.replace is None or self.guard not in self.table.c):
            raise ValueError(f"table {self.table.name}: a guard needs an upsert and a column, not {self.guard!r}")
        object.__setattr__(self, "key", keys[0])


class UnitOfWork:
    """Rows to write and keys to delete per table, plus engine values, committed together.

    The store writes every table's rows first (in the order the unit first saw each table), then
    the engine values, then the deletions: a row inserted and deleted by the same unit (an inbox
    event delivered before its batch was written) is gone afterwards.

    In a cluster (PostgreSQL only) a unit may carry a ``fence`` (it commits only while its node
    holds those partitions at those epochs, or ``Fenced`` is raised and nothing is written) and
    ``notify``: ``(channel, payload)`` pairs PostgreSQL sends to listeners once it commits."""

    __slots__ = ("deletes", "fence", "notify", "upserts", "values")

    def __init__(self) -> None:
        self.upserts: dict[TableWrite, list[dict[str, Any]]] = {}
        self.deletes: dict[TableWrite, list[Any]] = {}
        self.values: dict[str, str] = {}
        self.fence: Fence | None = None
        self.notify: list[tuple[str, str]] = []

    def rows(self, target: TableWrite) -> list[dict[str, Any]]:
        """The list of ``target``'s rows in this unit, to append to."""
        found = self.upserts.get(target)
        if found is None:
            found = self.upserts[target] = []
        return found

    def add(self, target: TableWrite, rows: Iterable[dict[str, Any]]) -> None:
        """Rows to write. A list given for a table the unit has no rows of yet is kept, not
        copied: what is appended to it until the unit is written is written too."""
        found = self.upserts.get(target)
        if found is None:
            self.upserts[target] = rows if isinstance(rows, list) else list(rows)
        else:
            found.extend(rows)

    def delete(self, target: TableWrite, keys: Iterable[Any]) -> None:
        """Keys of rows to delete (a list is kept like ``add`` keeps one)."""
        found = self.deletes.get(target)
        if found is None:
            self.deletes[target] = keys if isinstance(keys, list) else list(keys)
        else:
            found.extend(keys)

    def __bool__(self) -> bool:
        return (any(self.upserts.values()) or any(self.deletes.values())) or bool(self.values) or bool(self.notify)
