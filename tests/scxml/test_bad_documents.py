"""Bad documents: every problem is reported with its line and column, and nothing hangs."""

from __future__ import annotations

import pytest

from engine.scxml import FAILED, DocumentError, Limits, compile_document
from engine.scxml.runner import run_to_completion
from tests.scxml.documents import NS, scxml


def problems(text: str, strict: bool = True) -> list[tuple[int, int, str]]:
    with pytest.raises(DocumentError) as info:
        compile_document(text, source="doc.scxml", strict=strict)
    return [(p.line, p.column, p.message) for p in info.value.problems]


def test_malformed_xml_names_line_and_column() -> None:
    text = f'<scxml {NS}>\n  <state id="a">\n    <transition target="a">\n  </state>\n</scxml>'
    [(line, column, message)] = problems(text)
    assert line == 4 and column > 0
    assert message.startswith("malformed XML") and "transition" in message


def test_unknown_element_is_named_with_its_position() -> None:
    text = f'<scxml {NS}>\n  <state id="a">\n      <stat id="b"/>\n  </state>\n</scxml>'
    assert problems(text) == [(3, 7, "<stat> is not allowed inside <state>")]


def test_unknown_foreign_executable_content() -> None:
    text = (f'<scxml {NS} xmlns:x="urn:example">\n<state id="a"><onentry>'
            f'<x:beep/></onentry></state>\n</scxml>')
    [(line, column, message)] = problems(text)
    assert (line, column) == (2, 24)
    assert "<beep>" in message and "urn:example" in message


def test_missing_transition_target() -> None:
    text = f'<scxml {NS}>\n<state id="a">\n  <transition event="e" target="a nowhere"/>\n</state>\n</scxml>'
    assert problems(text) == [(3, 3, "transition target 'nowhere' does not exist")]


def test_expression_that_does_not_compile() -> None:
    text = f'<scxml {NS} datamodel="python">\n<state id="a">\n <transition cond="x ==" target="a"/>\n</state></scxml>'
    [(line, column, message)] = problems(text)
    assert (line, column) == (3, 2)
    assert "x ==" in message and "does not compile" in message
    # Loading for a W3C run keeps it: the standard wants error.execution when it is evaluated.
    doc = compile_document(text, strict=False)
    assert [p.line for p in doc.problems] == [3]


def test_every_problem_is_reported_at_once() -> None:
    text = (f'<scxml {NS} datamodel="python">\n<state id="a">\n<foo/>\n'
            f'<transition target="b"/>\n<transition target="c"/>\n</state>\n'
            f'<state id="a"/>\n</scxml>')
    found = problems(text)
    assert [line for line, _, _ in found] == [3, 4, 5, 7]
    assert "duplicate state id 'a'" in found[-1][2]


def test_wrong_root_and_unknown_datamodel() -> None:
    assert "must be <scxml>" in problems("<statechart/>")[0][2]
    assert "unknown datamodel 'cobol'" in problems(f'<scxml {NS} datamodel="cobol"><state/></scxml>')[0][2]


def test_entities_are_not_resolved() -> None:
    text = (f'<!DOCTYPE scxml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
            f'<scxml {NS} datamodel="python"><datamodel><data id="x">&secret;</data></datamodel>'
            f'<state id="a"/></scxml>')
    doc = compile_document(text)
    value = doc.root.data[0].value_factory() if doc.root.data[0].value_factory else None
    assert not value or "root:" not in str(value)


async def test_endless_eventless_loop_fails_the_session_clearly() -> None:
    doc = scxml('<state id="a"><transition target="b"/></state><state id="b"><transition target="a"/></state>')
    outcome = await run_to_completion(doc, timeout=5, limits=Limits(max_microsteps=500), http=False)
    assert outcome.status == FAILED and not outcome.timed_out
    assert "more than 500 steps in one macrostep" in outcome.error
    assert outcome.exit_code == 2


async def test_eventless_condition_that_keeps_failing_fails_the_session_clearly() -> None:
    # Each evaluation raises error.execution, which nothing takes: no microstep ever happens.
    doc = scxml('<state id="a"><transition cond="1 +" target="b"/></state><state id="b"/>')
    outcome = await run_to_completion(doc, timeout=5, limits=Limits(max_microsteps=300), http=False)
    assert outcome.status == FAILED and not outcome.timed_out
    assert "more than 300 steps" in outcome.error and "error.execution" in outcome.error


async def test_endless_raise_loop_fails_the_session_clearly() -> None:
    doc = scxml('<state id="a"><onentry><raise event="again"/></onentry>'
                '<transition event="again" target="a"/></state>')
    outcome = await run_to_completion(doc, timeout=5, http=False)
    assert outcome.status == FAILED and "steps in one macrostep" in outcome.error


async def test_self_invoking_document_hits_the_depth_limit(tmp_path) -> None:
    path = tmp_path / "again.scxml"
    path.write_text(
        f'<scxml {NS} datamodel="python"><state id="s">'
        f'<invoke src="file:again.scxml"/></state></scxml>'
    )
    from engine.scxml import load_document

    outcome = await run_to_completion(load_document(str(path)), timeout=5,
                                      limits=Limits(max_invoke_depth=5), http=False)
    assert outcome.status == FAILED and not outcome.timed_out
    assert "invoke depth limit of 5" in outcome.error
