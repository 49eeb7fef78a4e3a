"""The session host: many sessions of many documents on one event loop.

It owns what sessions share at run time: the clock, the event I/O processors and invokers built
from a registry, the table of live sessions (for ``#_scxml_<id>`` targets) and the guards.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable, ItemsView, Iterator, Mapping
from typing import Any

from ..ids import random_id
from .clock import Clock
from .compiler import compile_document, load_document
from .errors import ExecutionError
from .events import Event
from .limits import Limits
from .model import Document
from .ports import EventProcessor, Invoker, PerformsEffects, require
from .registry import Registry
from .session import Session
from .standard import DEFAULT_REGISTRY
from .transition_cache import TransitionCache
from .turns import TurnQueue
from .values import resolve_src

log = logging.getLogger("engine.scxml")


class IOProcessorTable(Mapping):
    """``_ioprocessors`` of one session: built on access so an idle session stays small."""

    __slots__ = ("_host", "_session")

    def __init__(self, host: SessionHost, session: Session):
        self._host = host
        self._session = weakref.ref(session)  # weak: the session's store holds this table

    def _entries(self) -> dict[str, Any]:
        from .events import AttrDict

        out: dict[str, Any] = {}
        session = self._session()
        if session is None:
            return out
        for type_uri, processor in self._host.active_processors().items():
            location = processor.location(session)
            if location is None:
                continue
            entry = AttrDict(location=location)
            out[type_uri] = entry
            for alias, target in self._host.registry.processor_aliases.items():
                if target == type_uri:
                    out[alias] = entry
        return out

    def __getitem__(self, key: str) -> Any:
        return self._entries()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def items(self) -> ItemsView[str, Any]:
        """Built once, not once per key (a context copies them on every wake)."""
        return self._entries().items()

    def __repr__(self) -> str:
        return repr(self._entries())


class SessionHost:
    """Creates, runs and finds sessions; one per engine process (and per test)."""

    def __init__(
        self,
        registry: Registry | None = None,
        clock: Clock | None = None,
        limits: Limits | None = None,
    ):
        self.registry = registry or DEFAULT_REGISTRY
        self.clock = clock or Clock()
        self.limits = limits or Limits()
        self.turns = TurnQueue(self.clock, self.limits.turn_seconds)
        self.sessions: dict[str, Session] = {}
        self._processors: dict[str, EventProcessor] = {}
        self._invokers: dict[str, Invoker] = {}
        self._child_docs: dict[tuple[str, float], Document] = {}
        self._transition_caches: weakref.WeakKeyDictionary[Document, TransitionCache] = weakref.WeakKeyDictionary()
        self.on_session_end: list[Callable[[Session], None]] = []
        # Observers of each burst of processing and its duration (the engine's metrics).
        self.on_processed: list[Callable[[Session, float], None]] = []
        self.effect_handlers: dict[str, Callable[[str, dict[str, Any]], Any]] = {}

    # -- sessions ------------------------------------------------------------------------
    def create_session(
        self,
        doc: Document,
        *,
        data: dict[str, Any] | None = None,
        parent: Session | None = None,
        invokeid: str | None = None,
        session_id: str | None = None,
    ) -> Session:
        sid = session_id or random_id()
        if sid in self.sessions:
            raise ValueError(f"session {sid!r} already exists")
        session = Session(self, doc, sid, parent=parent, invokeid=invokeid, data=data)
        self.sessions[sid] = session
        return session

    def start_session(self, doc: Document, *, data: dict[str, Any] | None = None,
                      session_id: str | None = None) -> Session:
        """Create a top-level session and run its first macrostep."""
        return self.create_session(doc, data=data, session_id=session_id).start()

    def transition_cache(self, doc: Document) -> TransitionCache:
        """The run-time lookups shared by this host's sessions of ``doc``; they go with the document."""
        cache = self._transition_caches.get(doc)
        if cache is None:
            cache = self._transition_caches[doc] = TransitionCache(doc)
        return cache

    # -- seams a persisting host overrides ---------------------------------------------------
    def route_event(self, sender: Session | None, target: Session, event: Event) -> None:
        """An event leaving ``sender`` for another session of this host."""
        target.deliver(event)

    def hand_over(self, sender: Session, session_id: str, event: Event) -> bool:
        """An event for a session this host does not run: True when another host takes it (a
        cluster node's session manager hands it to the node that runs it); this host has none."""
        return False

    def emit(self, session: Session, kind: str, payload: dict[str, Any], *, durable: bool = True) -> None:
        """An effect leaving the engine (a Basic HTTP send, a platform request); ``kind`` names its handler.
        ``durable=False``: it goes to a party that does not outlive this process (the in-process
        platform simulator), so a persisting host neither records it nor waits for its commit."""
        self.perform_effect(session.id, kind, payload)

    def perform_effect(self, session_id: str, kind: str, payload: dict[str, Any]) -> Any:
        """Carry out an effect; may return an awaitable that completes when it is done."""
        handler = self.effect_handlers.get(kind)
        if handler is None:
            # Processors register their effect handlers when built: build them all only then, not
            # for every effect (every platform request of every callback comes here).
            self.active_processors()
            handler = self.effect_handlers.get(kind)
            if handler is None:
                log.error("no handler for effect %r of session %s", kind, session_id)
                return None
        return handler(session_id, payload)

    def refuses_external(self, name: str) -> str | None:
        """Why an event of this name may not come from outside the engine (the Basic HTTP
        receiver, an API client), or None. The bare interpreter reserves nothing; an engine
        reserves the names its own platform and services raise in flows."""
        return None

    def session_changed(self, session: Session) -> None:
        """Called after every burst of processing of a session (a macrostep, a fired timer)."""

    def processed(self, session: Session, seconds: float) -> None:
        """A burst of processing of ``session`` (its macrosteps until it waits) took ``seconds``."""
        for observe in self.on_processed:
            observe(session, seconds)

    def session_ended(self, session: Session) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        for listener in self.on_session_end:
            try:
                listener(session)
            except Exception:
                log.exception("session-end listener failed for %s", session.id)

    # -- processors and invokers -----------------------------------------------------------
    def processor_for(self, type_name: str) -> EventProcessor | None:
        """The processor of a send type (URI or alias), built on first use; None when unknown."""
        canonical = self.registry.processor_type(type_name)
        if canonical is None:
            return None
        processor = self._processors.get(canonical)
        if processor is None:
            processor = self._build_processor(canonical)
        return processor

    def _build_processor(self, type_uri: str) -> EventProcessor:
        """A factory that is no class was not checked when it was registered: its product is, here."""
        processor = self.registry.processors[type_uri](self)
        require(processor, EventProcessor, "event I/O processor")
        kind = processor.effect_kind
        if kind:
            if not isinstance(processor, PerformsEffects):
                raise TypeError(f"event I/O processor {type(processor).__qualname__} has effects of kind "
                                f"{kind!r} but no perform(session_id, payload) to carry them out")
            self.effect_handlers[kind] = processor.perform
        self._processors[type_uri] = processor
        return processor

    def active_processors(self) -> dict[str, EventProcessor]:
        for type_uri in self.registry.processors:
            self.processor_for(type_uri)
        return self._processors

    def invoker_for(self, type_name: str) -> Invoker | None:
        """The invoker of an invoke type (URI or alias), built on first use; None when unknown."""
        canonical = self.registry.invoker_type(type_name)
        if canonical is None:
            return None
        invoker = self._invokers.get(canonical)
        if invoker is None:
            invoker = self.registry.invokers[canonical](self)
            require(invoker, Invoker, "invoker")
            self._invokers[canonical] = invoker
        return invoker

    def ioprocessors_for(self, session: Session) -> IOProcessorTable:
        return IOProcessorTable(self, session)

    # -- child documents -----------------------------------------------------------------
    def compile_child(self, text: str | bytes, parent: Document) -> Document:
        """A document given as ``<invoke>`` content. A sandboxed document may not hand it host
        code: its content may be built at run time, out of reach of any check at upload."""
        doc = compile_document(text, source=f"{parent.source} (invoked content)", base_dir=parent.base_dir,
                               registry=self.registry, default_datamodel=parent.datamodel.name or "python")
        if doc.datamodel.host_code and not parent.datamodel.host_code:
            raise ExecutionError(f"a {parent.datamodel.name or 'null'}-datamodel document cannot invoke a "
                                 f"{doc.datamodel.name}-datamodel document given as content: its expressions "
                                 "would run as code of the engine")
        return doc

    def load_child(self, src: str, parent: Document) -> Document:
        """A document named by ``src``, compiled once per file version."""
        path = resolve_src(src, parent.base_dir)
        try:
            mtime = os.stat(path).st_mtime
        except OSError as e:
            raise ExecutionError(f"cannot read invoked document {src!r}: {e.strerror}") from e
        key = (path, mtime)
        doc = self._child_docs.get(key)
        if doc is None:
            doc = self._child_docs[key] = load_document(path, registry=self.registry)
        return doc

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start processors that listen (Basic HTTP)."""
        for processor in self.active_processors().values():
            await processor.start()

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            session.cancel_timers()
        for processor in list(self._processors.values()):
            await processor.close()
