"""One node's link to the shared configuration of a cluster (``config_docs``): the domains' stores
save and import through it, and it hands them what the other nodes changed.

A domain follows a kind (``follow``) with a coroutine that re-reads one document by name and
applies it. A ``cbe_config`` notice names the kind, the name and the new revision; a revision
this node already has (its own write, heard back) is ignored. After the listener reconnects,
``sweep`` compares every revision with what this node has and re-reads what it missed (notices
sent while nobody listened are lost). Kinds with no revision (keys, sign-ins) are re-read whole
on every notice and on every sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from . import config_docs
from .config_docs import ConfigDoc
from .errors import StorageUnavailable
from .store import Store

log = logging.getLogger("engine.config")
T = TypeVar("T")
Reread = Callable[[str], Awaitable[None]]
#: What a database that fails raises (the caller's own refusals are not among them).
_FAILURES = (SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
SAVE_TIMEOUT = 10.0  # seconds a configuration write may take before the API answers 503


class SharedConfig:
    def __init__(self, store: Store, node: str):
        self.store = store
        self.node = node
        self.known: dict[tuple[str, str], int] = {}  # (kind, name) -> the revision this node applied
        self._followers: dict[str, Reread] = {}
        self._unversioned: set[str] = set()

    def follow(self, kind: str, reread: Reread, *, versioned: bool = True) -> None:
        """``reread(name)`` is awaited when another node changed a document of ``kind``
        (``versioned=False``: on every notice of the kind, and with ``""`` on every sweep)."""
        self._followers[kind] = reread
        if not versioned:
            self._unversioned.add(kind)

    def seen(self, kind: str, name: str, revision: int) -> None:
        """This node now serves ``revision`` of the document (never moves back)."""
        if revision > self.known.get((kind, name), 0):
            self.known[(kind, name)] = revision

    def superseded(self, kind: str, name: str, revision: int) -> bool:
        """Whether this node already serves a later revision (another node's change, heard while
        this node's own write was on its way): its own must not replace it then."""
        return self.known.get((kind, name), 0) > revision

    # -- reading ----------------------------------------------------------------------------
    async def documents(self, kind: str) -> list[ConfigDoc]:
        return await config_docs.read_kind(self.store, kind)

    async def document(self, kind: str, name: str) -> ConfigDoc | None:
        return await config_docs.read(self.store, kind, name)

    # -- writing ----------------------------------------------------------------------------
    async def save(self, kind: str, name: str, body: str) -> ConfigDoc:
        """Store and announce a validated document; ``StorageUnavailable`` (503) when the database
        refuses or does not answer in time, and nothing changed."""
        doc = await self.guarded(f"{kind.replace('_', ' ')} {name!r}",
                                  config_docs.save(self.store, kind, name, body, self.node))
        self.seen(kind, name, doc.revision)
        return doc

    async def import_source(self, kind: str, name: str, body: str, source_hash: str) -> ConfigDoc | None:
        """Store a file's validated document unless it was imported before (see ``config_docs``)."""
        doc = await self.guarded(f"{kind.replace('_', ' ')} {name!r}", config_docs.import_source(
            self.store, kind, name, body, source_hash, self.node))
        if doc is not None:
            self.seen(kind, name, doc.revision)
            log.info("imported %s %s (revision %d)", kind, name, doc.revision)
        return doc

    async def announce(self, kind: str, name: str, revision: int = 0) -> None:
        """Tell the other nodes about a change stored elsewhere (keys, sealed credentials)."""
        await self.guarded(f"the notice of {kind}", config_docs.notify(self.store, kind, name, revision))

    async def guarded(self, what: str, work: Awaitable[T]) -> T:
        """``work`` (a write of ``what``), or ``StorageUnavailable`` (503) when the database fails."""
        try:
            return await asyncio.wait_for(work, SAVE_TIMEOUT)
        except _FAILURES as e:  # the driver's errors, a lost connection, a timeout (what ``work`` refuses passes)
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.error("could not save %s: %s", what, reason)
            raise StorageUnavailable(f"could not save {what}: the database did not take it ({reason})") from e

    # -- hearing ----------------------------------------------------------------------------
    async def on_notice(self, payload: str) -> None:
        """The ``cbe_config`` listener's callback."""
        found = config_docs.read_notice(payload)
        if found is None:
            log.warning("cbe_config: a notice this engine does not know: %.200s", payload)
            return
        kind, name, revision = found
        reread = self._followers.get(kind)
        if reread is None:
            return
        if kind not in self._unversioned and revision <= self.known.get((kind, name), 0):
            return  # our own change, or one already applied
        await self._reread(kind, name, reread)

    async def sweep(self) -> None:
        """Re-read whatever changed while no notice could be heard (after a listener reconnect)."""
        for (kind, name), revision in (await config_docs.revisions(self.store)).items():
            reread = self._followers.get(kind)
            if reread is not None and kind not in self._unversioned and revision > self.known.get((kind, name), 0):
                await self._reread(kind, name, reread)
        for kind in sorted(self._unversioned):
            await self._reread(kind, "", self._followers[kind])

    async def _reread(self, kind: str, name: str, reread: Reread) -> None:
        try:
            await reread(name)
        except Exception:
            log.exception("could not apply the change of %s %r made on another node; the old one stays", kind, name)
