"""Which sessions keep a live JavaScript context: a bounded LRU with an idle timeout.

A context costs ~200 KB; a waiting session needs none (its data is kept as tagged JSON text and
a context is rebuilt from it on the next event). Rebuilding costs a few hundred microseconds, so
sessions that are busy keep theirs for ``idle_seconds``, at most ``live_contexts`` of them.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from typing import Protocol


class Hibernates(Protocol):
    def hibernate(self) -> None:
        """Save what the context holds and let the context go."""


class ContextPool:
    """The live contexts of one datamodel kind (one per registry)."""

    def __init__(self, live_contexts: int, idle_seconds: float):
        self.live_contexts = live_contexts
        self.idle_seconds = idle_seconds
        self._live: OrderedDict[int, tuple[weakref.ref, float]] = OrderedDict()
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None
        self.built = 0  # contexts built (for benchmarks and tests)

    def __len__(self) -> int:
        return len(self._live)

    def touch(self, holder: Hibernates) -> None:
        """``holder`` uses its context now: it goes to the young end; the oldest beyond the
        bound hibernate."""
        key = id(holder)
        live = self._live
        entry = live.get(key)
        now = time.monotonic()
        if entry is not None and entry[0]() is holder:
            live[key] = (entry[0], now)
            live.move_to_end(key)
            return
        live[key] = (weakref.ref(holder), now)
        live.move_to_end(key)
        while len(live) > self.live_contexts:
            _, (ref, _) = live.popitem(last=False)
            old = ref()
            if old is not None:
                old.hibernate()
        self._arm()

    def _arm(self) -> None:
        """One sweep timer on the running loop (a loop that went away takes its timer along)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._sweep is not None and self._sweep_loop is loop:
            return
        self._sweep_loop = loop
        self._sweep = loop.call_later(self.idle_seconds, self.sweep)

    def forget(self, holder: Hibernates) -> None:
        entry = self._live.get(id(holder))
        if entry is not None and entry[0]() is holder:
            del self._live[id(holder)]

    def sweep(self) -> None:
        """Hibernate every context idle for ``idle_seconds``; come back while any is left."""
        self._sweep = None
        cutoff = time.monotonic() - self.idle_seconds
        live = self._live
        while live:
            key, (ref, used) = next(iter(live.items()))
            if used > cutoff:
                break
            del live[key]
            holder = ref()
            if holder is not None:
                holder.hibernate()
        if live:
            self._arm()

    def drop_all(self) -> None:
        """Hibernate every live context (tests, benchmarks, shutdown)."""
        while self._live:
            _, (ref, _) = self._live.popitem(last=False)
            holder = ref()
            if holder is not None:
                holder.hibernate()
