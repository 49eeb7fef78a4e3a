"""The flow registry: SCXML documents in ``scxml/``, compiled once per version.

A version is identified by the hash of the document text. New sessions start on a flow's
current version; running sessions keep the version they started with, and every version any
session used is kept in the database so that it can be restored after a restart even when the
file has changed since. A bad document is refused with file, line, column and reason, and the
previous version keeps serving. The folder is watched (a cheap stat of each file once a
second), so dropping a file in is enough.

In a cluster (``shared``) the database says which version is current (``flow_current``) and
every version is numbered there, under a lock per flow, so two nodes never mint one number twice.
An upload is stored and announced to the other nodes, which serve it as soon as they hear of it;
nothing is written to the folder. A file of the folder is imported only when it changed since its
last import (its hash differs from the row's ``source_hash``), so a node starting with a stale
copy never undoes an upload; a file missing from one node's folder removes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic_file import SaveError, save, write_atomic
from ..scxml import Document, DocumentError, Problem, Registry, compile_document, over_limits
from ..scxml.interning import Interner
from ..storage import Store
from ..storage.config_docs import CHANNEL, content_hash, notice
from ..storage.shared_config import SharedConfig
from . import rows as session_rows

log = logging.getLogger("engine.flows")
FLOW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
KIND = "flow"  # a flow's kind in the cluster's cbe_config notices

# A version minted in a cluster, in one transaction: the flow's lock, its number (the one it has if
# this document was a version of it before, else the next), the version row, the current row (an
# import only when that file was not imported before and says something new), the notice.
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('flow:' || $1))"
_KNOWN = "SELECT version FROM flow_versions WHERE hash = $1 AND name = $2 AND kind = 'flow'"
_NEXT = "SELECT coalesce(max(version), 0) + 1 FROM flow_versions WHERE name = $1 AND kind = 'flow'"
_INSERT = ("INSERT INTO flow_versions (hash, name, version, kind, text, base_dir, created_at) "
           "VALUES ($1, $2, $3, 'flow', $4, $5, $6) ON CONFLICT (hash) DO NOTHING")
_CURRENT = """
INSERT INTO flow_current AS f (name, hash, version, source_hash, revision, updated_at, updated_by)
VALUES ($1, $2, $3, $4, 1, extract(epoch from clock_timestamp()), $5)
ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, version = excluded.version,
    source_hash = COALESCE(excluded.source_hash, f.source_hash), revision = f.revision + 1,
    updated_at = excluded.updated_at, updated_by = excluded.updated_by
"""
_IMPORTED = " WHERE f.source_hash IS DISTINCT FROM excluded.source_hash AND f.hash IS DISTINCT FROM excluded.hash"
_NOTIFY = "SELECT pg_notify($1, $2)"
def runs_host_code(raw: bytes, registry: Registry) -> bool:
    """Whether a document uses a datamodel whose expressions are host code (as ``registry`` knows
    its datamodels: ``python``, also the default when no ``datamodel`` is given; a name the
    registry does not know counts as host code too), in its root or in any document inlined in it for
    ``<invoke>``, as markup or as text (CDATA). Such a flow can do anything the engine's process
    can, so uploading one is the administrator's decision; documents built at run time are
    refused the same way by the interpreter. Unparseable text is left to the validation that
    follows, which refuses it with its line and column."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True)

    def uses_host_code(root: etree._Element, depth: int) -> bool:
        if depth > 8:
            return True  # documents nested this deep inside each other: assume the worst
        for el in root.iter():
            if not isinstance(el.tag, str):
                continue  # comments, processing instructions
            local = etree.QName(el).localname
            if local == "scxml":
                kind = registry.datamodel(el.get("datamodel", "python"))
                if kind is None or kind.host_code:
                    return True
            if local == "content" and el.text and "<" in el.text:
                try:
                    inner = etree.fromstring(el.text.strip().encode("utf-8"), parser)
                except (etree.XMLSyntaxError, ValueError):
                    continue
                if uses_host_code(inner, depth + 1):
                    return True
        return False

    try:
        return uses_host_code(etree.fromstring(raw, parser), 0)
    except etree.XMLSyntaxError:
        return False


@dataclass(frozen=True, slots=True)
class StartNames:
    """How a flow version takes a set of start parameter names (``SessionManager.start_flow``)."""

    declared: tuple[str, ...]  # replace the initial value of a top-level <data>
    undeclared: tuple[str, ...]  # become variables of their own
    refused: tuple[str, ...]  # reserved by the datamodel (sorted)
    shadowing: tuple[str, ...]  # undeclared ones that would hide a builtin of the datamodel (sorted)


@dataclass
class FlowVersion:
    name: str
    version: int
    hash: str
    doc: Document
    created_at: float
    kind: str = "flow"
    # start_names by the parameter names in their order: a service starts all its callbacks with the same ones
    _starts: Interner[tuple[str, ...], StartNames] = field(
        default_factory=lambda: Interner(256), init=False, repr=False, compare=False)

    def start_names(self, names: tuple[str, ...]) -> StartNames:
        """What becomes of start parameters with these names, worked out once per set of names."""
        return self._starts.get(names, self._start_names)

    def _start_names(self, names: tuple[str, ...]) -> StartNames:
        datamodel = self.doc.datamodel
        declared = {d.id for d in self.doc.root.data}
        undeclared = tuple(n for n in names if n not in declared)
        return StartNames(tuple(n for n in names if n in declared), undeclared,
                          tuple(sorted(datamodel.refused_names(names))),
                          tuple(sorted(datamodel.shadowing(undeclared))))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "hash": self.hash,
                "created_at": self.created_at, "states": len(self.doc.states)}


class FlowError(Exception):
    """A flow request that cannot be served (unknown name, bad name)."""


class FlowRegistry:
    def __init__(self, folder: str | Path, registry: Registry, store: Store | None = None,
                 watch_interval: float = 1.0, shared: SharedConfig | None = None):
        """``shared``: a cluster's shared configuration (then ``store`` is its database)."""
        self.folder = Path(folder)
        self.registry = registry
        self.store = store
        self.watch_interval = watch_interval
        self.versions: dict[str, list[FlowVersion]] = {}
        self.current: dict[str, FlowVersion] = {}
        self.by_hash: dict[str, FlowVersion] = {}
        self.refused: dict[str, list[Problem]] = {}
        self._seen: dict[str, tuple[float, int]] = {}
        self._watcher: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.shared = shared
        self.sources: dict[str, str | None] = {}  # cluster: the hash of the file each current came from

    # -- startup ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Load every stored version, then the folder; then watch it."""
        if self.store is not None:
            for row in await session_rows.load_flow_versions(self.store):
                self._adopt_row(row)
        if self.shared is not None:
            for row in await self._current_rows():
                self._take_current(row)
            self.shared.follow(KIND, self._reread)
        await self.scan()
        if self.watch_interval > 0:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except asyncio.CancelledError:
                pass
            self._watcher = None

    def _adopt_row(self, row: dict[str, Any]) -> None:
        """A stored version. One stored before a bound of this engine existed (``over_limits``)
        is kept for the sessions running on it, which a restart must not lose, but starts no
        new one: as with a folder file that no longer compiles, the version before it (if any)
        keeps serving and the flow shows why."""
        try:
            doc = compile_document(row["text"], source=row["name"], base_dir=row.get("base_dir"),
                                   registry=self.registry, limits=False)
        except DocumentError as e:
            log.error("stored version %s of %s no longer compiles: %s", row["version"], row["name"], e)
            return
        fv = FlowVersion(row["name"], row["version"], row["hash"], doc, row["created_at"], row["kind"])
        self.by_hash[fv.hash] = fv
        if fv.kind != "flow":
            return
        self.versions.setdefault(fv.name, []).append(fv)
        beyond = over_limits(doc)
        if beyond:
            self.refused[fv.name] = beyond
            log.warning("stored version %s of %s goes beyond this engine's limits; it runs only the sessions "
                        "already started on it (new ones start on the version before it, if any): %s",
                        row["version"], row["name"], "; ".join(map(str, beyond)))
        else:
            self.current[fv.name] = fv
            self.refused.pop(fv.name, None)

    # -- reading -----------------------------------------------------------------------------
    def get(self, name: str) -> FlowVersion:
        fv = self.current.get(name)
        if fv is None:
            raise FlowError(f"unknown flow {name!r}")
        return fv

    def document(self, content_hash: str) -> Document | None:
        fv = self.by_hash.get(content_hash)
        return fv.doc if fv is not None else None

    def describe(self) -> dict[str, Any]:
        out = {}
        for name in sorted(set(self.current) | set(self.refused)):
            out[name] = self.describe_flow(name)
        return out

    def describe_flow(self, name: str) -> dict[str, Any]:
        if name not in self.current and name not in self.refused:
            raise FlowError(f"unknown flow {name!r}")
        current = self.current.get(name)
        return {
            "name": name,
            "current": current.version if current else None,
            "versions": [fv.describe() for fv in self.versions.get(name, [])],
            "refused": [str(p) for p in self.refused.get(name, [])],
        }

    # -- changing ------------------------------------------------------------------------------
    async def add(self, name: str, text: str | bytes, *, write_file: bool = False) -> FlowVersion:
        """Validate and register a version; raises ``DocumentError`` and changes nothing then.

        ``write_file`` (an upload): the document is saved durably in the folder before it is
        served (``SaveError`` if it cannot be, and nothing changes); a refused upload is noted
        only on a flow that exists, so it never creates an entry without a file."""
        if not FLOW_NAME.match(name):
            raise FlowError(f"flow name {name!r} must be letters, digits, '.', '_' or '-' (at most 100)")
        raw = text.encode("utf-8") if isinstance(text, str) else text
        path = self.folder / f"{name}.scxml"
        async with self._lock:
            try:
                _check_utf8(raw, str(path))
                doc = compile_document(raw, source=str(path), base_dir=str(self.folder),
                                       strict=True, registry=self.registry)
            except DocumentError as e:
                if not write_file or name in self.current:  # never an entry for a flow that has no file
                    self.refused[name] = e.problems
                log.warning("flow %s refused:\n%s", name, e)
                raise
            if self.shared is not None:  # an upload (or an import: ``source`` set) for every node
                return await self._mint(name, doc, raw, None if write_file else content_hash(raw))
            if write_file:
                previous = await self._write_file(path, raw)
                try:
                    return await self._register(name, doc, raw)
                except BaseException:
                    await self._undo_write(path, previous)
                    raise
            return await self._register(name, doc, raw)

    async def _register(self, name: str, doc: Document, raw: bytes) -> FlowVersion:
        """Make a compiled document the flow's current version (stored first when new)."""
        existing = self.by_hash.get(doc.content_hash)
        if existing is not None and existing.kind == "flow" and existing.name == name:
            fv = existing
        else:
            versions = self.versions.get(name, [])
            fv = FlowVersion(name, (versions[-1].version + 1) if versions else 1,
                             doc.content_hash, doc, time.time())
            if self.store is not None:
                await session_rows.save_flow_version(self.store, self.row(fv, raw.decode("utf-8")))
            self.versions.setdefault(name, []).append(fv)
            self.by_hash[fv.hash] = fv
            log.info("flow %s version %d registered (%s)", name, fv.version, fv.hash[:12])
        self.refused.pop(name, None)
        self.current[name] = fv
        return fv

    # -- in a cluster ----------------------------------------------------------------------------
    async def _mint(self, name: str, doc: Document, raw: bytes, source: str | None) -> FlowVersion:
        """Number, store and make current a version for every node (``source``: the hash of the
        file it is imported from; the current version changes only if that file is new)."""
        assert self.shared is not None and self.store is not None
        text = raw.decode("utf-8")
        now = time.time()

        async def write() -> tuple[int, int | None]:
            assert self.store is not None
            async with self.store.engine.begin() as conn:
                await conn.exec_driver_sql(_LOCK, (name,))
                known = (await conn.exec_driver_sql(_KNOWN, (doc.content_hash, name))).scalar()
                version = known or (await conn.exec_driver_sql(_NEXT, (name,))).scalar()
                if known is None:
                    await conn.exec_driver_sql(_INSERT, (doc.content_hash, name, version, text, doc.base_dir, now))
                found = (await conn.exec_driver_sql(_CURRENT + (_IMPORTED if source else "") + " RETURNING revision",
                                                    (name, doc.content_hash, version, source, self.shared.node)))
                revision = found.scalar()
                if revision is not None:
                    await conn.exec_driver_sql(_NOTIFY, (CHANNEL, notice(KIND, name, revision)))
            return int(version), revision

        version, revision = await self.shared.guarded(f"flow {name!r}", write())
        fv = self.by_hash.get(doc.content_hash)
        if fv is None or fv.kind != "flow" or fv.name != name:
            fv = FlowVersion(name, version, doc.content_hash, doc, now)
            self.versions.setdefault(name, []).append(fv)
            self.by_hash[fv.hash] = fv
            log.info("flow %s version %d registered (%s)", name, fv.version, fv.hash[:12])
        self.refused.pop(name, None)
        if revision is not None and not self.shared.superseded(KIND, name, revision):
            self.current[name] = fv
            self.shared.seen(KIND, name, revision)
            if source is not None:
                self.sources[name] = source
        return self.current.get(name, fv)

    async def _current_rows(self, name: str | None = None) -> list[dict[str, Any]]:
        assert self.store is not None
        sql = "SELECT name, hash, version, source_hash, revision, updated_by FROM flow_current"
        async with self.store.engine.connect() as conn:
            found = await (conn.exec_driver_sql(sql + " WHERE name = $1", (name,)) if name is not None
                           else conn.exec_driver_sql(sql))
            return [dict(r._mapping) for r in found]

    def _take_current(self, row: dict[str, Any]) -> bool:
        """Serve the stored current version of a flow (compiled from its stored row if new here)."""
        fv = self.by_hash.get(row["hash"])
        if fv is None or fv.kind != "flow" or fv.name != row["name"] or over_limits(fv.doc):
            return False
        self.current[row["name"]] = fv
        self.sources[row["name"]] = row["source_hash"]
        assert self.shared is not None
        self.shared.seen(KIND, row["name"], int(row["revision"]))
        return True

    async def _reread(self, name: str) -> None:
        """Another node made a version current: serve it here too (new sessions start on it)."""
        assert self.store is not None
        for row in await self._current_rows(name):
            if not self._take_current(row):
                stored = await self.store.rows_where(session_rows.flow_versions,
                                                     session_rows.flow_versions.c.hash == row["hash"])
                for version in stored:
                    self._adopt_row(version)
                if not self._take_current(row):
                    log.error("flow %s version %s made current on %s cannot be served here; the previous "
                              "version keeps serving", name, row["version"], row["updated_by"])
                    continue
            log.info("flow %s: version %s is current (made so on %s)", name, row["version"], row["updated_by"])

    def row(self, fv: FlowVersion, text: str | None = None) -> dict[str, Any]:
        return {"hash": fv.hash, "name": fv.name, "version": fv.version, "kind": fv.kind,
                "text": text if text is not None else fv.doc.text, "base_dir": fv.doc.base_dir,
                "created_at": fv.created_at}

    def child_version(self, doc: Document) -> tuple[FlowVersion, bool]:
        """The stored identity of an invoked document; True when it is new (to be saved)."""
        fv = self.by_hash.get(doc.content_hash)
        if fv is not None:
            return fv, False
        fv = FlowVersion(doc.name or os.path.basename(doc.source), 0, doc.content_hash, doc,
                         time.time(), kind="child")
        self.by_hash[fv.hash] = fv
        return fv, True

    async def _write_file(self, path: Path, raw: bytes) -> bytes | None:
        """Save an upload durably (off the event loop: fsync can take a while); the bytes it
        replaced, so a registration that then fails can put them back."""
        try:
            previous: bytes | None = path.read_bytes()
        except FileNotFoundError:
            previous = None
        except OSError as e:
            raise SaveError(f"flow {path.stem!r}", e) from e
        await asyncio.to_thread(save, path, raw, f"flow {path.stem!r}")
        self._remember(path)
        return previous

    async def _undo_write(self, path: Path, previous: bytes | None) -> None:
        try:
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                await asyncio.to_thread(write_atomic, path, previous)
            self._remember(path)
        except OSError as e:
            log.error("could not restore %s after a failed upload: %s", path, e)

    def _remember(self, path: Path) -> None:
        """Mark the file as seen so the watcher does not load what we just wrote a second time."""
        try:
            st = path.stat()
        except OSError:
            self._seen.pop(str(path), None)
            return
        self._seen[str(path)] = (st.st_mtime, st.st_size)

    async def scan(self) -> dict[str, str]:
        """(Re)load changed files of the folder; returns what happened per flow."""
        report: dict[str, str] = {}
        paths = sorted(self.folder.glob("*.scxml")) if self.folder.is_dir() else []
        on_disk = {p.stem for p in paths}
        for name in [n for n in self.refused if n not in on_disk]:
            del self.refused[name]  # a refusal describes a file; gone with it
        for name in [n for n in self.current if n not in on_disk and self.shared is None]:
            # A removed file stops new sessions; running ones keep their stored version.
            del self.current[name]
            self._seen = {k: v for k, v in self._seen.items() if Path(k).stem != name}
            report[name] = "removed"
            log.info("flow %s removed from %s", name, self.folder)
        for path in paths:
            try:
                st = path.stat()
            except OSError:
                continue
            key = str(path)
            if self._seen.get(key) == (st.st_mtime, st.st_size):
                continue
            self._seen[key] = (st.st_mtime, st.st_size)
            try:
                raw = path.read_bytes()
                if self.shared is not None and path.stem in self.sources \
                        and self.sources[path.stem] == content_hash(raw):
                    continue  # imported before: what the cluster serves now may be newer
                fv = await self.add(path.stem, raw)
                report[path.stem] = f"version {fv.version}"
            except (DocumentError, FlowError) as e:
                report[path.stem] = f"refused: {e}"
        return report

    async def reload(self) -> dict[str, str]:
        self._seen.clear()
        return await self.scan()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch_interval)
            try:
                await self.scan()
            except Exception:
                log.exception("flow folder scan failed")


def _check_utf8(raw: bytes, source: str) -> None:
    """A flow is stored and served as UTF-8 text: a document in another encoding (UTF-16 with its
    XML declaration, which the parser reads) is refused before anything is written."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - raw.rfind(b"\n", 0, e.start)
        message = f"a flow must be UTF-8 text: byte {e.start} (0x{raw[e.start]:02x}) is not"
        raise DocumentError([Problem(source, line, column, message)]) from None
