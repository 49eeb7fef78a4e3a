"""The flow registry: SCXML documents in ``scxml/``, compiled once per version.

A version is identified by the hash of the document text. New sessions start on a flow's
current version; running sessions keep the version they started with, and every version any
session used is kept in the database so that it can be restored after a restart even when the
file has changed since. A bad document is refused with file, line, column and reason, and the
previous version keeps serving. The folder is watched (a cheap stat of each file once a
second), so dropping a file in is enough.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic_file import SaveError, save, write_atomic
from ..scxml import Document, DocumentError, Problem, Registry, compile_document
from ..storage import Store
from . import rows as session_rows

log = logging.getLogger("engine.flows")
FLOW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
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


@dataclass
class FlowVersion:
    name: str
    version: int
    hash: str
    doc: Document
    created_at: float
    kind: str = "flow"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "hash": self.hash,
                "created_at": self.created_at, "states": len(self.doc.states)}


class FlowError(Exception):
    """A flow request that cannot be served (unknown name, bad name)."""


class FlowRegistry:
    def __init__(self, folder: str | Path, registry: Registry, store: Store | None = None,
                 watch_interval: float = 1.0):
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

    # -- startup ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Load every stored version, then the folder; then watch it."""
        if self.store is not None:
            for row in await session_rows.load_flow_versions(self.store):
                self._adopt_row(row)
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
        try:
            doc = compile_document(row["text"], source=row["name"], base_dir=row.get("base_dir"),
                                   registry=self.registry)
        except DocumentError as e:
            log.error("stored version %s of %s no longer compiles: %s", row["version"], row["name"], e)
            return
        fv = FlowVersion(row["name"], row["version"], row["hash"], doc, row["created_at"], row["kind"])
        self.by_hash[fv.hash] = fv
        if fv.kind == "flow":
            self.versions.setdefault(fv.name, []).append(fv)
            self.current[fv.name] = fv

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
                doc = compile_document(raw, source=str(path), base_dir=str(self.folder),
                                       strict=True, registry=self.registry)
            except DocumentError as e:
                if not write_file or name in self.current:  # never an entry for a flow that has no file
                    self.refused[name] = e.problems
                log.warning("flow %s refused:\n%s", name, e)
                raise
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
        for name in [n for n in self.current if n not in on_disk]:
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
                fv = await self.add(path.stem, path.read_bytes())
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
