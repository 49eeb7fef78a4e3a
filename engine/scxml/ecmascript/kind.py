"""The ecmascript datamodel as documents name it: compiles and checks expressions once per
document, and gives each session its ``EcmaData``.

Expressions run in quickjs-ng, one context per session, sandboxed: nothing of the host is
reachable and every evaluation is bounded in CPU time and the context in memory
(``SandboxLimits``); ``host_code`` is False, so developers may upload such flows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ..datamodel import SYSTEM_NAMES, Code, DataModel
from ..interning import Interner
from . import codec
from .code import EXPR, LOCATION, SCRIPT, analyse
from .data import EcmaData
from .pool import ContextPool
from .sandbox import SandboxLimits, SyntaxChecker, describe, new_context, position

log = logging.getLogger("engine.scxml")
# A string literal that may name an IANA time zone ('Europe/Paris'), in code that uses _genesys.
_ZONE_LITERAL = re.compile(r"""(['"])([A-Z][A-Za-z_+-]*(?:/[A-Za-z0-9_+-]+)+|UTC)\1""")

# The names a context defines before any flow code runs (Object, JSON, Math, ...): a start
# parameter may not replace one unless the document declares it.
_BUILTINS: frozenset[str] | None = None


def builtin_names() -> frozenset[str]:
    global _BUILTINS
    if _BUILTINS is None:
        ctx = new_context(SandboxLimits())
        _BUILTINS = frozenset(ctx.eval("Object.getOwnPropertyNames(globalThis).join(' ')").split()) | {"_genesys"}
    return _BUILTINS


class PlatformRequests(Protocol):
    """How a request a flow made through ``_genesys.queue`` reaches the platform: as a
    ``<send type="platform">`` of it would, in the session's current macrostep (stored with it,
    sent after the commit, counted against the send budget). Raises ``ExecutionError`` when
    refused."""

    def __call__(self, session_id: str, request: str, data: dict[str, Any], request_id: str, line: int) -> None: ...


class EcmaScriptDataModel:
    """``datamodel="ecmascript"`` (W3C SCXML B.2), on quickjs-ng."""

    name = "ecmascript"
    host_code = False

    def __init__(self, limits: SandboxLimits | None = None,
                 facilities: Callable[[str | None, Iterable[str]], str | Mapping[str, Any] | None] | None = None,
                 queue_facts: Callable[[], str] | None = None,
                 platform_requests: PlatformRequests | None = None):
        """``facilities(session_id, zones)``: the facts a session's ``_genesys`` is built from
        (``ors.OrsFacilities``: JSON text, or a JSON-ready mapping), ``zones`` the time zones the
        flows name; given by the engine, which knows the callbacks and the platform. Without it
        flows have no ``_genesys``. With ``queue_facts()`` (the virtual queues' figures now, JSON
        text: ``OrsFacilities.queue_json``) they also have ``_genesys.queue``, whose requests go
        out through ``platform_requests`` (see ``PlatformRequests``)."""
        self.limits = limits or SandboxLimits()
        self.pool = ContextPool(self.limits.live_contexts, self.limits.idle_seconds)
        self.facilities = facilities
        self.queue_facts = queue_facts
        self.platform_requests = platform_requests
        self.in_ids: set[str] = set()  # every literal In('id') seen: what a dynamic In may ask
        self.in_ids_seen: tuple[str, ...] = ()  # the same, as a tuple sessions iterate safely
        self.zones: set[str] = set()  # every literal time zone of a ...InZone('tz') call
        self.uses_genesys = False  # some compiled flow names _genesys: contexts get it
        self._checker = SyntaxChecker()
        # names -> (the one tuple of them, its index by name); flows are few
        self._names: Interner[tuple[str, ...], tuple[tuple[str, ...], dict[str, int]]] = Interner(1024)
        self._refused: Interner[tuple[str, ...], tuple[str, ...]] = Interner(256)  # per set of start names

    def shared_names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """One tuple for every session whose variables have these names, in this order (the
        sessions of one flow): a waiting session keeps only its values (``EcmaData._pack``)."""
        return self.shared_index(names)[0]

    def shared_index(self, names: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, int]]:
        """``shared_names`` and, shared as well, each name's position: a packed session's
        values are read in place (``EcmaData._packed_value``)."""
        return self._names.get(names, _indexed)

    # ------------------------------------------------------------------ compiling
    def _compiled(self, mode: str, text: str, line: int, column: int) -> Code:
        c = Code(text, line, column)
        if mode != SCRIPT and not text.strip():
            c.error = "empty expression"
            return c
        jc = analyse(mode, text)
        if not self.in_ids.issuperset(jc.in_ids):
            self.in_ids.update(jc.in_ids)
            self.in_ids_seen = tuple(self.in_ids)
        if "_genesys" in text:
            self.uses_genesys = True
            self.zones.update(m.group(2) for m in _ZONE_LITERAL.finditer(text))
        wrapper = jc.value_src if mode != SCRIPT else f"(function(){{\n{text}\n}})"
        error = self._checker.check(wrapper)
        if error is not None:
            message = describe(error, self.limits)
            where = position(error)
            if mode == SCRIPT:
                at = f" at line {line + where[0] - 2}, column {where[1]}" if where else ""
                c.error = f"script does not compile: {message}{at}"
            else:
                at = f" (line {where[0] - 1}, column {where[1]} of the expression)" if where else ""
                c.error = f"{'location' if mode == LOCATION else 'expression'} does not compile: {message}{at}"
            return c
        c.code = jc
        return c

    def compile_expr(self, text: str, line: int, column: int) -> Code:
        return self._compiled(EXPR, text, line, column)

    def compile_location(self, text: str, line: int, column: int) -> Code:
        return self._compiled(LOCATION, text, line, column)

    def compile_script(self, text: str, line: int, column: int) -> Code:
        return self._compiled(SCRIPT, text, line, column)

    # ------------------------------------------------------------------ sessions
    def new_session(self, system: Mapping[str, Any]) -> DataModel:
        return EcmaData(self, system)

    def facilities_json(self, session_id: str | None) -> str | None:
        if self.facilities is None or not self.uses_genesys:
            return None
        try:
            value = self.facilities(session_id, self.zones)
        except Exception:
            log.exception("session %s: the _genesys facilities could not be built", session_id)
            return None
        if value is None or isinstance(value, str):
            return value
        return codec.to_json(value)

    def is_builtin(self, name: str) -> bool:
        return name in builtin_names()

    def refused_names(self, names: Iterable[str]) -> list[str]:
        """Asked of every session's start parameters, whose names are the same callback after
        callback (a service's options and the record's fields): answered once per set of names."""
        return list(self._refused.get(tuple(names), _refused_among))

    def shadowing(self, names: Iterable[str]) -> list[str]:
        builtins = builtin_names()
        return [n for n in names if n in builtins]


def _indexed(names: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, int]]:
    return names, {name: i for i, name in enumerate(names)}


def _refused_among(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in names if n in SYSTEM_NAMES or n.startswith("__") or n == "_genesys")
