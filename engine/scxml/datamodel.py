"""Datamodels: how expressions are compiled and evaluated, and where a session's data lives.

A datamodel object is stateless and shared by every session of a document; each session owns
only its ``store`` (for the python datamodel, the dict that expressions run in). New datamodels
register under the name the ``datamodel`` attribute uses.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
import textwrap
from collections.abc import Callable
from typing import Any

from .errors import ExecutionError

SYSTEM_NAMES = frozenset({"_event", "_sessionid", "_name", "_ioprocessors", "_x", "In"})


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


class DataModel:
    """The interface every datamodel implements."""

    name = ""
    # Whether expressions run as code of the host process (python) rather than in a sandbox.
    host_code = False

    def compile_expr(self, text: str, line: int, column: int) -> Code:
        raise NotImplementedError

    def compile_location(self, text: str, line: int, column: int) -> Code:
        raise NotImplementedError

    def compile_script(self, text: str, line: int, column: int) -> Code:
        raise NotImplementedError

    def new_store(self, system: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def evaluate(self, store: dict[str, Any], expr: Code) -> Any:
        raise NotImplementedError

    def test(self, store: dict[str, Any], expr: Code) -> bool:
        raise NotImplementedError

    def assign(self, store: dict[str, Any], location: Code, value: Any) -> None:
        raise NotImplementedError

    def declare(self, store: dict[str, Any], name: str, value: Any) -> None:
        raise NotImplementedError

    def execute(self, store: dict[str, Any], script: Code) -> None:
        raise NotImplementedError

    def set_variable(self, store: dict[str, Any], name: str, value: Any) -> None:
        """Bind a ``<foreach>`` item or index, which must be a plain variable name."""
        raise NotImplementedError

    def user_data(self, store: dict[str, Any]) -> dict[str, Any]:
        """The author's variables, without system names (for queries and snapshots)."""
        return {k: v for k, v in store.items() if k not in SYSTEM_NAMES and not k.startswith("__")}


class PythonDataModel(DataModel):
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

    def new_store(self, system: dict[str, Any]) -> dict[str, Any]:
        store = {"__builtins__": builtins, "_event": None}
        store.update(system)
        return store

    def evaluate(self, store: dict[str, Any], expr: Code) -> Any:
        code = expr.code
        if code is None:
            raise expr.fail(expr.error or "cannot be evaluated")
        try:
            return eval(code, store)
        except Exception as e:
            raise expr.fail(f"{type(e).__name__}: {e}") from e

    def test(self, store: dict[str, Any], expr: Code) -> bool:
        value = self.evaluate(store, expr)
        try:
            return bool(value)
        except Exception as e:
            raise expr.fail(f"is not a boolean: {type(e).__name__}: {e}") from e

    def assign(self, store: dict[str, Any], location: Code, value: Any) -> None:
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

    def declare(self, store: dict[str, Any], name: str, value: Any) -> None:
        store[name] = value

    def execute(self, store: dict[str, Any], script: Code) -> None:
        if script.code is None:
            raise script.fail(script.error or "cannot run")
        try:
            exec(script.code, store)
        except Exception as e:
            raise script.fail(f"{type(e).__name__}: {e}") from e

    def set_variable(self, store: dict[str, Any], name: str, value: Any) -> None:
        if not name.isidentifier() or keyword.iskeyword(name) or name in SYSTEM_NAMES:
            raise ExecutionError(f"{name!r} is not a legal variable name")
        store[name] = value


_IN_CALL = re.compile(r"""^\s*In\(\s*(['"])([^'"]+)\1\s*\)\s*$""")


class NullDataModel(DataModel):
    """No data at all; the only expression is ``In('state')`` in conditions (W3C B.1)."""

    name = "null"

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

    def new_store(self, system: dict[str, Any]) -> dict[str, Any]:
        return {"In": system["In"]}

    def evaluate(self, store: dict[str, Any], expr: Code) -> Any:
        if expr.code is None:
            raise expr.fail(expr.error or "cannot be evaluated")
        return store["In"](expr.target)

    def test(self, store: dict[str, Any], expr: Code) -> bool:
        return bool(self.evaluate(store, expr))

    def assign(self, store: dict[str, Any], location: Code, value: Any) -> None:
        raise location.fail("the null datamodel has no locations")

    def declare(self, store: dict[str, Any], name: str, value: Any) -> None:
        return None

    def execute(self, store: dict[str, Any], script: Code) -> None:
        raise script.fail("the null datamodel has no scripts")

    def set_variable(self, store: dict[str, Any], name: str, value: Any) -> None:
        raise ExecutionError("the null datamodel has no variables")

    def user_data(self, store: dict[str, Any]) -> dict[str, Any]:
        return {}


def _root_name(text: str) -> str:
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", text)
    return m.group(1) if m else ""


DATAMODELS: dict[str, Callable[[], DataModel]] = {
    "python": PythonDataModel,
    "null": NullDataModel,
}
_shared: dict[str, DataModel] = {}


def register_datamodel(name: str, factory: Callable[[], DataModel]) -> None:
    DATAMODELS[name] = factory
    _shared.pop(name, None)


def get_datamodel(name: str) -> DataModel | None:
    """The shared datamodel object for ``name``, or None when nobody registered it."""
    dm = _shared.get(name)
    if dm is None:
        factory = DATAMODELS.get(name)
        if factory is None:
            return None
        dm = _shared[name] = factory()
    return dm
