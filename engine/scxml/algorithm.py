"""The W3C SCXML 1.0 algorithm (Appendix D) over plain inputs: which transitions an event
enables, which of them conflict, and which states a microstep exits and enters.

Everything here is a function of the document model, a configuration (a set of active
``StateNode``), the recorded history (history state id -> the states it stored, or None) and a
condition callback. Nothing here runs executable content, touches queues or knows of sessions:
``Session`` runs what these functions decide, so they can be tested on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .model import FINAL, HISTORY, PARALLEL, ROOT, StateNode, Transition, transition_domain

if TYPE_CHECKING:
    from .executable import Action

History = Mapping[str, list[StateNode]] | None
Holds = Callable[[Transition], bool]


# What a microstep enters: the states in entry order, the compound states entered by their
# initial transition, and the content of history defaults to run (by the history's parent id).
# A plain tuple: it is built on the hot path.
EntrySet = tuple[tuple[StateNode, ...], frozenset[StateNode], "dict[str, tuple[Action, ...]]"]


def by_order(s: StateNode) -> int:
    return s.order


def select(groups: Sequence[Sequence[Transition]], holds: Holds, configuration: Collection[StateNode],
           history: History) -> list[Transition]:
    """W3C selectTransitions / selectEventlessTransitions: ``groups`` holds, per atomic state in
    document order, its candidate transitions (its own first, then its ancestors'); the first
    whose condition ``holds`` is taken from each, and conflicts are resolved."""
    if len(groups) == 1:  # one atomic state (most configurations): nothing can conflict
        for t in groups[0]:
            if t.cond is None or holds(t):
                return [t]
        return []
    enabled: list[Transition] = []
    for group in groups:
        for t in group:
            if t.cond is None or holds(t):
                if t not in enabled:
                    enabled.append(t)
                break
    return remove_conflicts(enabled, configuration, history) if len(enabled) > 1 else enabled


def remove_conflicts(enabled: list[Transition], configuration: Collection[StateNode],
                     history: History) -> list[Transition]:
    """W3C removeConflictingTransitions: of two transitions exiting a common state, the one from
    the descendant source wins, else the earlier one in document order."""
    filtered: list[Transition] = []
    exit_sets: dict[int, set[StateNode]] = {}

    def exits(t: Transition) -> set[StateNode]:
        found = exit_sets.get(id(t))
        if found is None:
            found = exit_sets[id(t)] = exit_set((t,), configuration, history)
        return found

    for t1 in enabled:
        preempted = False
        to_remove = []
        for t2 in filtered:
            if exits(t1) & exits(t2):
                if t2.source in t1.source.ancestor_set:
                    to_remove.append(t2)
                else:
                    preempted = True
                    break
        if not preempted:
            for t3 in to_remove:
                filtered.remove(t3)
            filtered.append(t1)
    return filtered


def domain(t: Transition, history: History) -> StateNode | None:
    """W3C getTransitionDomain; known at compile time unless a target is a history state."""
    if t.history_free:
        return t.static_domain
    return transition_domain(t, effective_targets(t, history))


def effective_targets(t: Transition, history: History) -> list[StateNode]:
    """W3C getEffectiveTargetStates: history targets replaced by what they stored (or their
    default transition's targets)."""
    targets: list[StateNode] = []
    for s in t.targets:
        if s.kind == HISTORY:
            stored = history.get(s.id) if history else None
            if stored:
                targets.extend(x for x in stored if x not in targets)
            else:
                targets.extend(x for x in effective_targets(s.transitions[0], history) if x not in targets)
        elif s not in targets:
            targets.append(s)
    return targets


def exit_set(transitions: Iterable[Transition], configuration: Collection[StateNode],
             history: History) -> set[StateNode]:
    """W3C computeExitSet: the active states below each transition's domain."""
    out: set[StateNode] = set()
    for t in transitions:
        if t.targets:
            d = t.static_domain if t.history_free else domain(t, history)
            for s in configuration:
                if d in s.ancestor_set:
                    out.add(s)
    return out


def exit_order(states: Iterable[StateNode]) -> list[StateNode]:
    """States in the order they are exited: reverse document order."""
    return sorted(states, key=by_order, reverse=True)


def history_to_record(to_exit: Iterable[StateNode], configuration: Collection[StateNode]
                      ) -> dict[str, list[StateNode]]:
    """What each history state of the exited states stores (W3C exitStates)."""
    recorded: dict[str, list[StateNode]] = {}
    for s in to_exit:
        for h in s.history:
            if h.history_deep:
                recorded[h.id] = [x for x in configuration if x.is_atomic and s in x.ancestor_set]
            else:
                recorded[h.id] = [x for x in configuration if x.parent is s]
    return recorded


def entry_set(enabled: Iterable[Transition], history: History) -> tuple[EntrySet, bool]:
    """W3C computeEntrySet, and whether a history state was involved (if not, the result depends
    on the document only and may be shared by every session)."""
    builder = _EntryBuilder(history)
    for t in enabled:
        for s in t.targets:
            builder.add_descendants(s)
        ancestor = domain(t, history)
        for s in effective_targets(t, history) if not t.history_free else t.targets:
            builder.add_ancestors(s, ancestor)
    result = (tuple(sorted(builder.to_enter, key=by_order)), frozenset(builder.default_entry),
              builder.history_content)
    return result, builder.used_history


class _EntryBuilder:
    """The sets addDescendantStatesToEnter / addAncestorStatesToEnter fill in."""

    __slots__ = ("default_entry", "history", "history_content", "to_enter", "used_history")

    def __init__(self, history: History):
        self.history = history
        self.to_enter: set[StateNode] = set()
        self.default_entry: set[StateNode] = set()
        self.history_content: dict[str, tuple[Action, ...]] = {}
        self.used_history = False

    def add_descendants(self, state: StateNode) -> None:
        if state.kind == HISTORY:
            self.used_history = True
            stored = self.history.get(state.id) if self.history else None
            if stored:
                for s in stored:
                    self.add_descendants(s)
                for s in stored:
                    self.add_ancestors(s, state.parent)
            else:
                t = state.transitions[0]
                if t.actions:
                    self.history_content[state.parent.id] = t.actions  # type: ignore[union-attr]
                for s in t.targets:
                    self.add_descendants(s)
                for s in t.targets:
                    self.add_ancestors(s, state.parent)
            return
        self.to_enter.add(state)
        if state.is_compound:
            self.default_entry.add(state)
            targets = state.initial.targets  # type: ignore[union-attr]
            for s in targets:
                self.add_descendants(s)
            for s in targets:
                self.add_ancestors(s, state)
        elif state.kind == PARALLEL:
            for child in state.children:
                if not any(child in s.ancestor_set for s in self.to_enter):
                    self.add_descendants(child)

    def add_ancestors(self, state: StateNode, ancestor: StateNode | None) -> None:
        for anc in state.ancestors:
            if anc is ancestor or anc.kind == ROOT:
                return
            self.to_enter.add(anc)
            if anc.kind == PARALLEL:
                for child in anc.children:
                    if not any(child in s.ancestor_set for s in self.to_enter):
                        self.add_descendants(child)


def in_final(s: StateNode, configuration: Collection[StateNode]) -> bool:
    """W3C isInFinalState."""
    if s.is_compound:
        return any(c.kind == FINAL and c in configuration for c in s.children)
    if s.kind == PARALLEL:
        return all(in_final(c, configuration) for c in s.children)
    return False
