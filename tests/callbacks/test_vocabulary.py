"""One vocabulary: callback states and reasons are spelt only in engine/callbacks/vocabulary.py.

Everywhere else in engine/ they are ``CallbackState``/``CompletionReason`` members, so a typo is an
error at import, not a comparison that is silently never true. The members equal their strings,
so records, the REST API and flows are unchanged.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from engine.callbacks import flow_actions
from engine.callbacks.vocabulary import FLOW_STATES, OPEN_STATES, CallbackState, CompletionReason

ENGINE = Path(__file__).resolve().parents[2] / "engine"
WORDS = {member.value for member in CallbackState} | {member.value for member in CompletionReason}
# The one file that may spell the words (storage's callback queries now live in callbacks/rows.py).
ALLOWED = {"callbacks/vocabulary.py"}


def _literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    # ``__all__`` lists Python names (the scxml package exports a session status CANCELLED).
    exported = {
        id(constant)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        for constant in ast.walk(node.value)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in WORDS
        and id(node) not in docstrings and id(node) not in exported
    ]


def test_no_state_or_reason_is_spelt_outside_the_vocabulary() -> None:
    found = {
        f"{path.relative_to(ENGINE)}:{line}: {word!r}"
        for path in sorted(ENGINE.rglob("*.py"))
        if str(path.relative_to(ENGINE)) not in ALLOWED
        for line, word in _literals(path)
    }
    assert found == set()


def test_the_check_sees_a_literal(tmp_path: Path) -> None:
    """Guards the test above: a plain "COMPLETED" comparison is found."""
    sample = tmp_path / "sample.py"
    sample.write_text('"""Doc: COMPLETED."""\n__all__ = ["CANCELLED"]\nif record["_callback_state"] == "COMPLETED":\n'
                      '    pass\n')
    assert _literals(sample) == [(3, "COMPLETED")]


def test_members_are_their_strings_in_json_and_comparisons() -> None:
    encoded = json.dumps({"s": CallbackState.COMPLETED, "r": CompletionReason.PURGED})
    assert encoded == '{"s": "COMPLETED", "r": "PURGED"}'
    assert CallbackState.QUEUED == "QUEUED" and f"{CompletionReason.FAIL_ERROR}" == "FAIL_ERROR"


def test_flows_may_report_the_open_states_only() -> None:
    assert list(FLOW_STATES) == ["QUEUED", "ROUTING", "PROCESSING", "PAUSED"]
    assert set(FLOW_STATES) == OPEN_STATES
    assert flow_actions.STATES == FLOW_STATES
    assert list(flow_actions.REASONS) == [reason.value for reason in CompletionReason]
