"""``bench/documents.py``: the SCXML documents ``bench/interpreter.py`` times, and their oracles.

The file is no script (nothing to run on its own) but the interpreter benchmark's input: each event
document says which leaves must be active after ``k`` events (and the value of its counter), and
each generated document how many states it has and where it starts. The benchmark trusts these to
prove that a timed run did its work; a wrong oracle would fail it on a right engine, or let a
wrong one pass (``leaves`` missing a state hides that state being active). So each oracle is held
here against the engine event by event, in both datamodels the benchmark runs, and each document
against its own text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bench.documents import EventDocument, event_documents, idle_timer_document, sized_document
from engine.scxml import SessionHost, compile_document, standard_registry

NS = "{http://www.w3.org/2005/07/scxml}"
STATES = {f"{NS}state", f"{NS}parallel", f"{NS}final"}
DATAMODELS = ("python", "ecmascript")
DOCUMENTS = event_documents()


def states_of(text: str) -> list[ET.Element]:
    return [element for element in ET.fromstring(text).iter() if element.tag in STATES]


def atomic_ids(text: str) -> frozenset[str]:
    """Ids of the states with no child state."""
    return frozenset(element.get("id", "") for element in states_of(text)
                     if element.tag != f"{NS}parallel" and not any(child.tag in STATES for child in element))


def test_the_four_event_documents_come_in_report_order() -> None:
    assert [doc.name for doc in DOCUMENTS] == ["toggle", "nested", "parallel", "guarded_assign"]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda doc: doc.name)
def test_the_leaves_are_every_atomic_state_of_the_document(doc: EventDocument) -> None:
    assert doc.leaves == atomic_ids(doc.text)


@pytest.mark.parametrize("datamodel", DATAMODELS)
@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda doc: doc.name)
async def test_the_oracle_names_the_active_leaves_after_each_event(doc: EventDocument, datamodel: str) -> None:
    registry = standard_registry()
    host = SessionHost(registry=registry)
    text = doc.text.replace('datamodel="python"', f'datamodel="{datamodel}"')
    session = host.start_session(compile_document(text, source=f"test:{doc.name}", registry=registry))
    try:
        for sent in range(10):  # past two whole cycles of the longest (4 leaves)
            if sent:
                session.send(doc.event)
            assert set(session.active_state_ids()) & doc.leaves == doc.expected_leaves(sent), sent
            if doc.counter is not None:
                assert session.datamodel.variable(doc.counter) == sent
    finally:
        await host.close()


@pytest.mark.parametrize("states", [1, 4, 5, 7, 10, 50, 200])
async def test_a_generated_document_has_its_states_and_starts_in_its_first_leaf(states: int) -> None:
    doc = sized_document(states)
    assert doc.states == states and len(states_of(doc.text)) == states
    registry = standard_registry()
    host = SessionHost(registry=registry)
    session = host.start_session(compile_document(doc.text, source=f"test:sized{states}", registry=registry))
    try:
        assert doc.initial_leaf in session.active_state_ids()
        assert session.datamodel.variable("count") == doc.initial_count
    finally:
        await host.close()


def test_the_idle_document_waits_on_its_delayed_send() -> None:
    root = ET.fromstring(idle_timer_document("50ms"))
    assert root.get("initial") == "waiting"
    send = root.find(f"{NS}state/{NS}onentry/{NS}send")
    assert send is not None and send.get("delay") == "50ms" and send.get("event") == "timeout"
