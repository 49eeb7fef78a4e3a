"""Datamodels: how expressions are compiled and evaluated, and where a session's data lives.

Two ports. A ``DataModelKind`` (python, null; ECMAScript next) is what a document's
``datamodel`` attribute names: stateless, shared by every session of the document, it compiles
expressions and makes each session its ``DataModel``, the object that holds the session's
variables and evaluates, assigns, declares and runs scripts against them. Sessions and their
callers go through ``DataModel`` only: which datamodel a session uses, and how it keeps its
variables, is known here alone. Kinds are chosen by name through the ``Registry``.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from .errors import ExecutionError
from .interning import Interner, itself

SYSTEM_NAMES = frozenset({"_event", "_sessionid", "_name", "_ioprocessors", "_x", "In"})


class _NoValue:
    """The value of a ``<data>`` that has none (no expr, src or content, late binding before its
    state is entered, or a value that failed): ECMAScript's ``undefined``, as distinct from a
    ``null`` the author wrote. Datamodels without that distinction (python) store None."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Any = _NoValue()


class Code:
    """A compiled expression, location or script; ``error`` is set when it did not compile."""

    __slots__ = ("code", "column", "error", "line", "target", "text")

    def __init__(self, text: str, line: int, column: int):
        self.text = text
        self.code: Any = None
        self.error: str | None = None
        self.line = line
        self.column = column
        self.target: str | None = None  # for locations that are plain names

    def fail(self, reason: str) -> ExecutionError:
        return ExecutionError(f"line {self.line}: {self.text.strip()!r}: {reason}")


class Foreign:
    """A value of a datamodel's own engine that has no Python type (an ECMAScript ``undefined``,
    Date or function): its JSON-ready ``form`` is kept as it is, stored by snapshots and handed
    back to that datamodel, which alone reads it."""

    __slots__ = ("form",)

    def __init__(self, form: Any):
        self.form = form

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Foreign) and other.form == self.form

    def __hash__(self) -> int:
        return hash(repr(self.form))

    def __repr__(self) -> str:
        tag = self.form.get("$t") if isinstance(self.form, dict) else None
        if tag == "u":
            return "undefined"
        if tag == "n":
            return str(self.form.get("v"))
        if tag == "date" and isinstance(self.form.get("v"), int | float):
            return _iso_time(self.form["v"] / 1000)
        if tag == "big":
            return f"{self.form.get('v')}n"
        return f"<{tag or 'foreign'} value>"

    __str__ = __repr__


def _iso_time(seconds: float) -> str:
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return "Invalid Date"


class DataModel(Protocol):
    """The port between a session and its data: one object per session, holding the session's
    variables however its datamodel keeps them (a dict for python; an ECMAScript datamodel keeps
    them in its engine). Nothing outside this module sees that store."""

    def evaluate(self, expr: Code) -> Any:
        """The value of a compiled expression; ``ExecutionError`` when it fails."""

    def test(self, expr: Code) -> bool:
        """A condition's truth; ``ExecutionError`` when it fails or is not a boolean."""

    def execute(self, script: Code) -> None:
        """Run a ``<script>``."""

    def assign(self, location: Code, value: Any) -> None:
        """``<assign>`` (and ``idlocation``): system variables are read-only, names must exist."""

    def declare(self, name: str, value: Any) -> None:
        """Create (or set) a variable: ``<data>`` and start parameters; ``value`` is ``NO_VALUE``
        for a ``<data>`` without one."""

    def declare_all(self, values: Mapping[str, Any]) -> None:
        """``declare`` each of ``values``, in order: a session's start parameters and the
        ``<data>`` they give values to, one call rather than one per variable (~45 a callback)."""

    def set_variable(self, name: str, value: Any) -> None:
        """Bind a ``<foreach>`` item or index, which must be a plain variable name."""

    def variable(self, name: str) -> Any:
        """A variable's value, None when it is not set."""

    def defines(self, name: str) -> bool:
        """Whether ``name`` is one of the author's variables (``variables`` would hold it): a
        lookup of one name without copying them all."""

    def lookup(self, name: str, default: Any = None) -> Any:
        """``variable(name)`` if ``defines(name)``, else ``default``: one call where a status
        event's attributes (~20 a callback, read from the session's data) made two."""

    def set_event(self, event: Any) -> None:
        """The system variable ``_event``: the event being processed."""

    def variables(self) -> dict[str, Any]:
        """The author's variables, without system names: what queries show and snapshots keep."""

    def stored_variables(self) -> tuple[dict[str, Any], str | None]:
        """``variables()`` for a snapshot: the values, and the JSON text of an object holding the
        others (disjoint names), or None. The text is plain JSON, no value tagged, that gives
        those variables as ``variables()`` would when read by a JSON parser (orjson's): text the
        datamodel keeps anyway, which a snapshot may then write as it is rather than parse it and
        walk its values to write them again."""

    def restore(self, values: Mapping[str, Any]) -> None:
        """Put back variables ``variables`` gave (after a restart)."""

    @property
    def can_hibernate(self) -> bool:
        """Whether ``variables`` and ``restore`` give the session back after a restart."""

    @property
    def live(self) -> bool:
        """Whether the session holds an interpreter context of its own now: memory that goes
        with the session, so a host keeping an ended session for a while keeps its description
        instead."""


class DataModelKind(Protocol):
    """A datamodel as a document names it: compiles its expressions once, shared by every
    session of the document, and makes each session its ``DataModel``."""

    name: str
    # Whether expressions run as code of the host process (python) rather than in a sandbox.
    host_code: bool

    def compile_expr(self, text: str, line: int, column: int) -> Code: ...

    def compile_location(self, text: str, line: int, column: int) -> Code: ...

    def compile_script(self, text: str, line: int, column: int) -> Code: ...

    def new_session(self, system: Mapping[str, Any]) -> DataModel:
        """The data of a new session, with its system variables (``_sessionid``, ``_name``,
        ``_ioprocessors``, ``In``)."""
        ...

    def refused_names(self, names: Iterable[str]) -> list[str]:
        """Of ``names``, those a variable given from outside (a start parameter) may not take."""
        ...

    def shadowing(self, names: Iterable[str]) -> list[str]:
        """Of ``names``, those that as new variables would hide something every expression of a
        document relies on (python: its builtins)."""
        ...


# What a python expression finds without defining it (checked for each start parameter).
_BUILTIN_NAMES = frozenset(dir(builtins))


def _reserved(name: str) -> bool:
    return name in SYSTEM_NAMES or name.startswith("__")


#: Names of packed stores, shared by the sessions of a flow (``PythonData._pack``).
_SHARED_NAMES: Interner[tuple[str, ...], tuple[str, ...]] = Interner(1024)
#: References to a store when nothing but its session holds it: the attribute, the local name in
#: ``_pack`` and ``sys.getrefcount``'s argument. More means a function's globals, a stored
#: ``globals()`` or a running frame holds it, and a copy would no longer be the namespace they see.
_SOLE_REFERENCES = 3


class PythonData:
    """A python-datamodel session's variables: one global namespace its expressions run in.

    Between snapshots a waiting session keeps its namespace packed as a tuple of values, the
    tuple of names shared by the sessions of its flow: a dict of its own was ~2.3 KB for the
    python callback flow's 51 names. It is unpacked on the next use."""

    __slots__ = ("_names", "_st", "_values")
    can_hibernate = True
    live = False

    def __init__(self, system: Mapping[str, Any]):
        store = {"__builtins__": builtins, "_event": None}
        store.update(system)
        self._st: dict[str, Any] | None = store
        self._names: tuple[str, ...] = ()
        self._values: tuple[Any, ...] = ()

    @property
    def _store(self) -> dict[str, Any]:
        store = self._st
        if store is None:
            store = self._st = dict(zip(self._names, self._values, strict=True))
            self._names = self._values = ()
        return store

    def _pack(self) -> None:
        """Pack the namespace if nothing but this object refers to it (see ``_SOLE_REFERENCES``)."""
        store = self._st
        if store is None or sys.getrefcount(store) != _SOLE_REFERENCES:
            return
        shared = _SHARED_NAMES.get(tuple(store), itself)
        self._names, self._values, self._st = shared, tuple(store.values()), None

    def evaluate(self, expr: Code) -> Any:
        code = expr.code
        if code is None:
            raise expr.fail(expr.error or "cannot be evaluated")
        try:
            return eval(code, self._store)
        except Exception as e:
            raise expr.fail(f"{type(e).__name__}: {e}") from e

    def test(self, expr: Code) -> bool:
        value = self.evaluate(expr)
        try:
            return bool(value)
        except Exception as e:
            raise expr.fail(f"is not a boolean: {type(e).__name__}: {e}") from e

    def assign(self, location: Code, value: Any) -> None:
        store = self._store
        name = location.target
        if name is not None:
            if name in SYSTEM_NAMES:
                raise location.fail(f"{name} is a read-only system variable")
            if name not in store:
                raise location.fail(f"{name} is not declared")
            store[name] = value
            return
        if location.code is None:
            raise location.fail(location.error or "not assignable")
        root = _root_name(location.text)
        if root in SYSTEM_NAMES:
            raise location.fail(f"{root} is a read-only system variable")
        try:
            exec(location.code, store, {"__scxml_value__": value})
        except Exception as e:
            raise location.fail(f"{type(e).__name__}: {e}") from e

    def declare(self, name: str, value: Any) -> None:
        self._store[name] = None if value is NO_VALUE else value

    def declare_all(self, values: Mapping[str, Any]) -> None:
        store = self._store
        for name, value in values.items():
            store[name] = None if value is NO_VALUE else value

    def execute(self, script: Code) -> None:
        if script.code is None:
            raise script.fail(script.error or "cannot run")
        try:
            exec(script.code, self._store)
        except Exception as e:
            raise script.fail(f"{type(e).__name__}: {e}") from e

    def set_variable(self, name: str, value: Any) -> None:
        if not name.isidentifier() or keyword.iskeyword(name) or name in SYSTEM_NAMES:
            raise ExecutionError(f"{name!r} is not a legal variable name")
        self._store[name] = value

    def variable(self, name: str) -> Any:
        return self._store.get(name)

    def defines(self, name: str) -> bool:
        return name in self._store and not _reserved(name)

    def lookup(self, name: str, default: Any = None) -> Any:
        return default if _reserved(name) else self._store.get(name, default)

    def set_event(self, event: Any) -> None:
        self._store["_event"] = event

    def variables(self) -> dict[str, Any]:
        # A copy made in C, then the few names that are not the author's taken out: a third of
        # the cost of filtering each name, and every snapshot takes this copy.
        store = self._st  # None when packed: nothing ran since the last snapshot
        out = dict(zip(self._names, self._values, strict=True)) if store is None else store.copy()
        del store  # a reference _pack must not count
        for name in SYSTEM_NAMES:
            out.pop(name, None)
        for name in [k for k in out if k[:2] == "__"]:
            del out[name]
        self._pack()  # a snapshot is taken once a session has run: it may wait now
        return out

    def stored_variables(self) -> tuple[dict[str, Any], str | None]:
        return self.variables(), None  # live values only: no text to keep

    def restore(self, values: Mapping[str, Any]) -> None:
        self._store.update(values)


class PythonDataModel:
    """Expressions and scripts are Python, run in one global namespace per session."""

    name = "python"
    host_code = True

    def compile_expr(self, text: str, line: int, column: int) -> Code:
        c = Code(text, line, column)
        src = text.strip()
        if not src:
            c.error = "empty expression"
            return c
        try:
            c.code = compile(src, f"<expr line {line}>", "eval")
        except SyntaxError as e:
            c.error = f"does not compile: {e.msg}"
        return c

    def compile_location(self, text: str, line: int, column: int) -> Code:
        c = Code(text, line, column)
        src = text.strip()
        try:
            node = ast.parse(src, mode="eval").body
        except SyntaxError as e:
            c.error = f"location does not compile: {e.msg}"
            return c
        if isinstance(node, ast.Name):
            c.target = node.id
            return c
        if not isinstance(node, (ast.Attribute, ast.Subscript)):
            c.error = "not an assignable location"
            return c
        node.ctx = ast.Store()
        stmt = ast.Assign(targets=[node], value=ast.Name(id="__scxml_value__", ctx=ast.Load()))
        module = ast.fix_missing_locations(ast.Module(body=[stmt], type_ignores=[]))
        c.code = compile(module, f"<location line {line}>", "exec")
        return c

    def compile_script(self, text: str, line: int, column: int) -> Code:
        c = Code(text, line, column)
        try:
            c.code = compile(textwrap.dedent(text).strip("\n"), f"<script line {line}>", "exec")
        except SyntaxError as e:
            c.error = f"script does not compile: {e.msg} (script line {e.lineno})"
        return c

    def new_session(self, system: Mapping[str, Any]) -> DataModel:
        return PythonData(system)

    def refused_names(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if _reserved(n)]

    def shadowing(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if n in _BUILTIN_NAMES]


_IN_CALL = re.compile(r"""^\s*In\(\s*(['"])([^'"]+)\1\s*\)\s*$""")


class NullDataModel:
    """No data at all; the only expression is ``In('state')`` in conditions (W3C B.1)."""

    name = "null"
    host_code = False

    def compile_expr(self, text: str, line: int, column: int) -> Code:
        c = Code(text, line, column)
        m = _IN_CALL.match(text)
        if m:
            c.target = m.group(2)
            c.code = True
        else:
            c.error = "the null datamodel allows only In('state id')"
        return c

    def compile_location(self, text: str, line: int, column: int) -> Code:
        c = Code(text, line, column)
        c.error = "the null datamodel has no locations"
        return c

    def compile_script(self, text: str, line: int, column: int) -> Code:
        c = Code(text, line, column)
        c.error = "the null datamodel has no scripts"
        return c

    def new_session(self, system: Mapping[str, Any]) -> DataModel:
        return NullData(system["In"])

    def refused_names(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if _reserved(n)]

    def shadowing(self, names: Iterable[str]) -> list[str]:
        return []


class NullData:
    """A null-datamodel session: no variables; conditions may ask ``In('state')`` only."""

    __slots__ = ("_in",)
    can_hibernate = True
    live = False

    def __init__(self, in_state: Callable[[str], bool]):
        self._in = in_state

    def evaluate(self, expr: Code) -> Any:
        if expr.code is None:
            raise expr.fail(expr.error or "cannot be evaluated")
        return self._in(expr.target)  # type: ignore[arg-type]

    def test(self, expr: Code) -> bool:
        return bool(self.evaluate(expr))

    def assign(self, location: Code, value: Any) -> None:
        raise location.fail("the null datamodel has no locations")

    def declare(self, name: str, value: Any) -> None:
        return None

    def declare_all(self, values: Mapping[str, Any]) -> None:
        return None

    def execute(self, script: Code) -> None:
        raise script.fail("the null datamodel has no scripts")

    def set_variable(self, name: str, value: Any) -> None:
        raise ExecutionError("the null datamodel has no variables")

    def variable(self, name: str) -> Any:
        return None

    def defines(self, name: str) -> bool:
        return False

    def lookup(self, name: str, default: Any = None) -> Any:
        return default

    def set_event(self, event: Any) -> None:
        return None

    def variables(self) -> dict[str, Any]:
        return {}

    def stored_variables(self) -> tuple[dict[str, Any], str | None]:
        return {}, None

    def restore(self, values: Mapping[str, Any]) -> None:
        return None


def _root_name(text: str) -> str:
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", text)
    return m.group(1) if m else ""


# Read-only: every Registry starts from a copy of it and owns its kinds (one instance per registry).
BUILTIN_DATAMODELS: Mapping[str, Callable[[], DataModelKind]] = MappingProxyType({
    "python": PythonDataModel,
    "null": NullDataModel,
})
