"""The W3C algorithm on its own: documents compiled, configurations and history given by hand,
no session and no host."""

from __future__ import annotations

from engine.scxml import algorithm
from engine.scxml.model import Document, StateNode, Transition
from engine.scxml.transition_cache import EVENT_NAMES_PER_STATE, TransitionCache
from tests.scxml.documents import scxml

# p is parallel with regions a (a1, a2) and b (b1, b2); h remembers a's child; c is outside.
DOC = scxml(
    '<parallel id="p">'
    '<state id="a" initial="a1"><history id="ha"><transition target="a2"/></history>'
    '<state id="a1"><transition event="go" target="a2"/><transition event="out" target="c"/></state>'
    '<state id="a2"/></state>'
    '<state id="b" initial="b1">'
    '<state id="b1"><transition event="go" target="b2"/><transition event="out" target="c"/>'
    '<transition event="same" target="b2"/></state>'
    '<state id="b2"/></state>'
    '<transition event="same" target="c"/>'
    '</parallel>'
    '<state id="c"><transition event="back" target="ha"/><transition cond="flag" target="b"/></state>',
    initial="p",
)


def states(doc: Document, *ids: str) -> set[StateNode]:
    return {doc.by_id[i] for i in ids}


def ids(nodes) -> list[str]:
    return [s.id for s in sorted(nodes, key=algorithm.by_order)]


def candidates(doc: Document, config: set[StateNode], name: str) -> list[tuple[Transition, ...]]:
    cache = TransitionCache(doc)
    return [cache.candidates(s, name) for s in sorted(config, key=algorithm.by_order) if s.is_atomic]


def always(t: Transition) -> bool:
    return True


ACTIVE = states(DOC, "p", "a", "a1", "b", "b1")


def test_parallel_regions_each_take_their_transition() -> None:
    enabled = algorithm.select(candidates(DOC, ACTIVE, "go"), always, ACTIVE, None)
    assert [(t.source.id, t.targets[0].id) for t in enabled] == [("a1", "a2"), ("b1", "b2")]
    assert ids(algorithm.exit_set(enabled, ACTIVE, None)) == ["a1", "b1"]
    entry, used_history = algorithm.entry_set(enabled, None)
    assert [s.id for s in entry[0]] == ["a2", "b2"] and not used_history


def test_conflicting_transitions_keep_the_first_in_document_order() -> None:
    enabled = algorithm.select(candidates(DOC, ACTIVE, "out"), always, ACTIVE, None)
    assert [t.source.id for t in enabled] == ["a1"]  # b1's exits p as well: preempted
    assert ids(algorithm.exit_set(enabled, ACTIVE, None)) == ["p", "a", "a1", "b", "b1"]


def test_a_descendant_source_preempts_its_ancestor() -> None:
    inner = DOC.by_id["b1"].transitions[2]
    outer = DOC.by_id["p"].transitions[0]
    assert algorithm.remove_conflicts([outer, inner], ACTIVE, None) == [inner]
    # candidates per atomic state: a1 has no "same", so it falls back to p's; b1 has its own
    groups = candidates(DOC, ACTIVE, "same")
    assert [[t.source.id for t in g] for g in groups] == [["p"], ["b1", "p"]]
    assert algorithm.select(groups, always, ACTIVE, None) == [inner]


def test_a_condition_callback_decides_and_sees_only_guarded_transitions() -> None:
    active = states(DOC, "c")
    asked: list[str] = []

    def holds(t: Transition) -> bool:
        asked.append(t.source.id)
        return False

    assert algorithm.select([DOC.by_id["c"].eventless], holds, active, None) == []
    assert asked == ["c"]
    enabled = algorithm.select([DOC.by_id["c"].eventless], always, active, None)
    entry, _ = algorithm.entry_set(enabled, None)
    assert [s.id for s in entry[0]] == ["p", "a", "a1", "b", "b1"]  # the parallel around b too
    assert ids(entry[1]) == ["a", "b"]


def test_history_targets_use_what_was_recorded_or_the_default() -> None:
    back = DOC.by_id["c"].transitions[0]
    active = states(DOC, "c")
    assert [s.id for s in algorithm.effective_targets(back, None)] == ["a2"]  # the default
    recorded = algorithm.history_to_record(algorithm.exit_order(ACTIVE), ACTIVE)
    assert {k: [s.id for s in v] for k, v in recorded.items()} == {"ha": ["a1"]}
    assert [s.id for s in algorithm.effective_targets(back, recorded)] == ["a1"]
    entry, used_history = algorithm.entry_set([back], recorded)
    assert used_history and [s.id for s in entry[0]] == ["p", "a", "a1", "b", "b1"]
    assert algorithm.domain(back, recorded) is DOC.root
    assert ids(algorithm.exit_set([back], active, recorded)) == ["c"]


def test_in_final_for_compound_and_parallel_states() -> None:
    doc = scxml('<parallel id="p"><state id="x"><final id="xf"/></state>'
                '<state id="y" initial="y1"><state id="y1"/><final id="yf"/></state></parallel>')
    p = doc.by_id["p"]
    assert not algorithm.in_final(p, states(doc, "p", "x", "xf", "y", "y1"))
    assert algorithm.in_final(doc.by_id["x"], states(doc, "xf"))
    assert algorithm.in_final(p, states(doc, "p", "x", "xf", "y", "yf"))


def test_the_transition_cache_leaves_the_document_model_alone() -> None:
    doc = scxml('<state id="s"><transition event="a.b" target="t"/><transition event="*"/></state>'
                '<state id="t"/>')
    s = doc.by_id["s"]
    before = {name: getattr(s, name) for name in type(s).__slots__}
    cache = TransitionCache(doc)
    assert [t.events for t in cache.candidates(s, "a.b.c")] == [("a.b",), ("*",)]
    assert [t.events for t in cache.candidates(s, "x")] == [("*",)]
    for i in range(EVENT_NAMES_PER_STATE + 10):  # arbitrary names: answered, remembered up to a bound
        assert len(cache.candidates(s, f"n{i}")) == 1
    assert len(cache._events[s.order]) == EVENT_NAMES_PER_STATE
    t = s.transitions[0]
    assert cache.entry_set([t], None) is cache.entry_set([t], None)  # computed once, shared
    assert {name: getattr(s, name) for name in type(s).__slots__} == before
