"""Which platform events a cluster has taken in: one ``inbox_sources`` row per event, named
``p<platform incarnation>:<seq>``.

A platform event reaches a session either handed over (``SessionManager.send_to`` with its source:
the row and the inbox row are one statement, so a second copy inserts nothing) or, on the node
running the session, straight away. Such a direct take writes its source row with the batch that
stores the event (fenced by the session's partition, so a refused batch leaves it out too): a copy
the platform sends again after that commit, to whichever node, goes the handed-over way and finds
the row. Without it, a node killed between its commit and its ``eack`` made the next holder
apply the event a second time to a session restored with it already applied.

Left open: the copy sent again winning the race with the first copy's write still in flight (the
platform sends it elsewhere only once the first node's connection is gone or the session was
bound elsewhere, the latter fencing that write): both would land. The window is one write.
"""

from __future__ import annotations

import time
from typing import Any

from ..ids import partition_of
from ..storage import TableWrite
from ..storage.cluster_tables import inbox_sources

#: A source already there (a copy handed over first) is kept: the insert never fails the batch.
SOURCES = TableWrite(inbox_sources, keep_existing=True)


def source_of(platform_incarnation: str | None, seq: int) -> str:
    """The name a platform event goes by in ``inbox_sources`` (and a handoff's ``source``)."""
    return f"p{platform_incarnation}:{seq}"


def source_rows(platform_incarnation: str | None, taken: dict[int, str]) -> list[dict[str, Any]]:
    """Rows for events taken here, ``seq -> session``; each carries its session's partition (not
    a column: the batch's fence covers it, and leaves the row out with a lost partition)."""
    now = time.time()
    return [{"source": source_of(platform_incarnation, seq), "at": now, "part": partition_of(sid)}
            for seq, sid in taken.items()]
