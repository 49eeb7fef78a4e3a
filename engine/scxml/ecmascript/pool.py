"""Which sessions keep a live JavaScript context: a bounded LRU with an idle timeout.

A context costs ~200 KB; a waiting session needs none (its data is kept as tagged JSON text and
a context is rebuilt from it on the next event). Rebuilding costs a few hundred microseconds, so
sessions that are busy keep theirs for ``idle_seconds``, at most ``live_contexts`` of them.

The C allocator keeps the memory of contexts let go for reuse instead of giving it back, so the
process would stay at its peak of live contexts (~200 KB per queued callback once a burst of
sessions had started). The sweep hands it back (``malloc_trim``, a few milliseconds at most)
when contexts came and went since the last sweep.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("engine.scxml")


def _allocator_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where there is none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _allocator_trim()


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
        self.trimmed = 0  # times the freed memory was handed back (for tests)
        self._built_at_trim = 0
        self._let_go = 0  # contexts the pool let go since the last trim

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
                self._let_go += 1
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
                self._let_go += 1
        if live:
            self._arm()
        self.release_memory()

    def release_memory(self) -> None:
        """Give the memory of contexts let go back to the system, if contexts came and went (let
        go here, or freed with a session that ended: a session built one)."""
        if (not self._let_go and self.built == self._built_at_trim) or _TRIM is None:
            return
        self._built_at_trim = self.built
        self._let_go = 0
        _TRIM(0)
        self.trimmed += 1

    def drop_all(self) -> None:
        """Hibernate every live context (tests, benchmarks, shutdown)."""
        while self._live:
            _, (ref, _) = self._live.popitem(last=False)
            holder = ref()
            if holder is not None:
                holder.hibernate()
                self._let_go += 1
        self.release_memory()
