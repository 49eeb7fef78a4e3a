"""The compiled, immutable form of an SCXML document, shared by all of its sessions.

Everything that can be worked out once per document is worked out here: document order,
ancestors, each state's eventless transitions and each transition's domain when it does not
depend on history. Nothing here is written once compilation is done: what sessions learn at
run time (which transitions an event name triggers, entry sets) lives in a ``TransitionCache``
their host owns (``transition_cache.py``). Sessions hold only their own state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .datamodel import DataModelKind
    from .errors import Problem

STATE, PARALLEL, FINAL, HISTORY, ROOT = "state", "parallel", "final", "history", "scxml"


class Transition:
    """A ``<transition>`` (or an initial transition) with its compiled parts."""

    __slots__ = (
        "actions",
        "column",
        "cond",
        "events",
        "history_free",
        "internal",
        "line",
        "order",
        "source",
        "static_domain",
        "targets",
    )

    def __init__(
        self,
        source: StateNode,
        events: tuple[str, ...] | None,
        cond: Any,
        targets: tuple[StateNode, ...],
        internal: bool,
        actions: tuple,
        order: int,
        line: int,
        column: int,
    ):
        self.source = source
        self.events = events
        self.cond = cond
        self.targets = targets
        self.internal = internal
        self.actions = actions
        self.order = order
        self.line = line
        self.column = column
        self.static_domain: StateNode | None = None
        self.history_free = True

    def __repr__(self) -> str:
        return (
            f"Transition({self.source.id} -> {[t.id for t in self.targets]}, "
            f"event={self.events}, line={self.line})"
        )


class StateNode:
    """A state, parallel, final, history or the ``<scxml>`` root."""

    __slots__ = (
        "ancestor_set",
        "ancestors",
        "children",
        "column",
        "data",
        "depth",
        "donedata",
        "eventless",
        "history",
        "history_deep",
        "id",
        "initial",
        "invokes",
        "is_atomic",
        "is_compound",
        "kind",
        "line",
        "onentry",
        "onexit",
        "order",
        "parent",
        "transitions",
    )

    def __init__(self, id: str, kind: str, parent: StateNode | None, line: int, column: int):
        self.id = id
        self.kind = kind
        self.parent = parent
        self.children: list[StateNode] = []
        self.history: list[StateNode] = []
        self.order = 0
        self.depth = 0 if parent is None else parent.depth + 1
        self.ancestors: tuple[StateNode, ...] = ()
        self.ancestor_set: frozenset[StateNode] = frozenset()
        self.initial: Transition | None = None
        self.transitions: list[Transition] = []
        self.onentry: tuple = ()
        self.onexit: tuple = ()
        self.invokes: tuple = ()
        self.data: tuple = ()
        self.donedata: Any = None
        self.history_deep = False
        self.line = line
        self.column = column
        self.is_atomic = False
        self.is_compound = False
        self.eventless: tuple[Transition, ...] = ()

    def __repr__(self) -> str:
        return f"<{self.kind} {self.id}>"

    def finish(self) -> None:
        """Derive the facts that depend on the finished tree."""
        self.is_atomic = self.kind in (STATE, FINAL) and not self.children
        self.is_compound = (self.kind == STATE and bool(self.children)) or self.kind == ROOT
        chain = []
        p = self.parent
        while p is not None:
            chain.append(p)
            p = p.parent
        self.ancestors = tuple(chain)
        self.ancestor_set = frozenset(chain)
        # Eventless transitions of this state then its ancestors, innermost first.
        self.eventless = tuple(
            t for s in (self, *chain) for t in s.transitions if t.events is None
        )


@dataclass(slots=True)
class DataDecl:
    """A ``<data>`` element: an id and how to get its initial value."""

    id: str
    expr: Any = None
    value_factory: Any = None  # callable producing a fresh value (inline content or src)
    error: str | None = None  # a problem to raise as error.execution when initialised
    line: int = 0
    column: int = 0


@dataclass(slots=True, eq=False, weakref_slot=True)
class Document:
    """A compiled SCXML document. Compared by identity, so a host can key per-document run-time
    caches on it (weakly: a document nobody uses any more is freed with its cache)."""

    name: str | None
    source: str
    base_dir: str | None
    datamodel: DataModelKind
    binding: str
    root: StateNode
    states: list[StateNode]
    by_id: dict[str, StateNode]
    script: tuple
    problems: list[Problem] = field(default_factory=list)
    content_hash: str = ""
    has_history: bool = False
    uses_late_data: bool = False
    text: str = ""

    def __repr__(self) -> str:
        return f"<Document {self.name or self.source} {len(self.states)} states>"


def transition_domain(t: Transition, targets: tuple[StateNode, ...] | list[StateNode]) -> StateNode | None:
    """W3C getTransitionDomain for known effective targets: a fact of the tree, which the compiler
    works out once for transitions without history targets and the algorithm for the others."""
    if not targets:
        return None
    src = t.source
    if t.internal and src.is_compound and all(src in s.ancestor_set for s in targets):
        return src
    for anc in src.ancestors:
        if anc.is_compound and all(anc in s.ancestor_set for s in targets):
            return anc
    return src.ancestors[-1] if src.ancestors else src
