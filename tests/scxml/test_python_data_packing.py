"""A python-datamodel session waiting between snapshots keeps its namespace packed (a tuple of
values, the names shared by sessions with the same names), and nothing that refers to the
namespace itself (a function's globals, a stored ``globals()``) ever sees a stale copy."""

from __future__ import annotations

from engine.scxml.datamodel import PythonData, PythonDataModel

KIND = PythonDataModel()


def _session(sid: str) -> PythonData:
    data = KIND.new_session({"_sessionid": sid, "_name": "flow"})
    assert isinstance(data, PythonData)
    return data


def _run(data: PythonData, script: str) -> None:
    data.execute(KIND.compile_script(script, 1, 1))


def _value(data: PythonData, expr: str) -> object:
    return data.evaluate(KIND.compile_expr(expr, 1, 1))


def test_a_snapshot_packs_the_namespace_and_shares_its_names() -> None:
    first, second = _session("a"), _session("b")
    for data, n in ((first, 1), (second, 2)):
        data.declare("count", n)
        data.declare("items", [n])
        assert data.variables() == {"count": n, "items": [n]}
    assert first._st is None and second._st is None  # packed
    assert first._names is second._names  # one tuple of names for both
    assert first.variables() == {"count": 1, "items": [1]}  # read while packed
    assert first._st is None
    assert _value(first, "count + 10") == 11  # unpacked on use, values intact
    first.assign(KIND.compile_location("count", 1, 1), 5)
    assert first.variables() == {"count": 5, "items": [1]}
    assert second.variables() == {"count": 2, "items": [2]}


def test_a_function_of_the_flow_keeps_seeing_the_live_namespace() -> None:
    data = _session("f")
    data.declare("x", 1)
    _run(data, "def read_x():\n    return x\n")
    data.variables()  # a snapshot: the function's globals refer to the namespace, so no copy
    data.assign(KIND.compile_location("x", 1, 1), 2)
    assert _value(data, "read_x()") == 2
    data.variables()
    _run(data, "x = 3")
    assert _value(data, "read_x()") == 3


def test_a_stored_globals_keeps_seeing_the_live_namespace() -> None:
    data = _session("g")
    data.declare("x", 1)
    _run(data, "ns = globals()")
    data.variables()
    _run(data, "x = 7")
    assert _value(data, "ns['x']") == 7
