"""What sessions of one document learn at run time and share: the transitions an event name can
trigger from each state, and the entry set of each transition that involves no history.

The document model stays immutable; the host keeps one ``TransitionCache`` per document (see
``SessionHost.transition_cache``). Both caches depend on the document only, never on a session.
"""

from __future__ import annotations

from . import algorithm
from .algorithm import EntrySet, History
from .events import descriptors_match
from .model import Document, StateNode, Transition

# The names remembered per state are bounded, so documents fed arbitrary event names stay small.
EVENT_NAMES_PER_STATE = 512


class TransitionCache:
    """Per-document lookups the algorithm would otherwise repeat for every event."""

    __slots__ = ("_entries", "_events")

    def __init__(self, doc: Document):
        # Indexed by state order (the root is 0, the states 1..n in document order).
        self._events: list[dict[str, tuple[Transition, ...]] | None] = [None] * (len(doc.states) + 1)
        self._entries: dict[Transition, EntrySet] = {}

    def candidates(self, state: StateNode, name: str) -> tuple[Transition, ...]:
        """Transitions of ``state`` then its ancestors whose event descriptors match ``name``,
        grouped per state (innermost first, document order inside a state)."""
        by_name = self._events[state.order]
        if by_name is None:
            by_name = self._events[state.order] = {}
        found = by_name.get(name)
        if found is None:
            found = tuple(
                t
                for s in (state, *state.ancestors)
                for t in s.transitions
                if t.events is not None and descriptors_match(t.events, name)
            )
            if len(by_name) < EVENT_NAMES_PER_STATE:
                by_name[name] = found
        return found

    def entry_set(self, t: Transition, history: History) -> EntrySet:
        """The entry set of a history-free transition taken alone; remembered when no history
        state was on the way (an initial transition may lead to one), as it is then the same
        for every session."""
        found = self._entries.get(t)
        if found is None:
            found, used_history = algorithm.entry_set((t,), history)
            if not used_history:
                self._entries[t] = found
        return found
