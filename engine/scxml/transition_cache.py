"""What sessions of one document learn at run time and share: the transitions an event name can
trigger from each state, and the entry sets of microsteps that involve no history.

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
# So are the entry sets of several transitions taken together (parallel regions).
ENTRY_SETS = 4096


class TransitionCache:
    """Per-document lookups the algorithm would otherwise repeat for every event."""

    __slots__ = ("_events", "entries")

    def __init__(self, doc: Document):
        # Indexed by state order (the root is 0, the states 1..n in document order).
        self._events: list[dict[str, tuple[Transition, ...]]] = [{} for _ in range(len(doc.states) + 1)]
        # Read directly on the hot path (``entries.get(t)``), filled by ``entry_set``.
        self.entries: dict[Transition | tuple[Transition, ...], EntrySet] = {}

    def candidates(self, state: StateNode, name: str) -> tuple[Transition, ...]:
        """Transitions of ``state`` then its ancestors whose event descriptors match ``name``,
        grouped per state (innermost first, document order inside a state)."""
        by_name = self._events[state.order]
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

    def entry_set(self, enabled: list[Transition], history: History) -> EntrySet:
        """The entry set of the transitions a microstep takes; remembered when no history state
        was on the way (then it is the same for every session). One transition is remembered
        under itself, several under their tuple (up to ``ENTRY_SETS`` of those)."""
        key: Transition | tuple[Transition, ...] = enabled[0] if len(enabled) == 1 else tuple(enabled)
        found = self.entries.get(key)
        if found is None:
            found, used_history = algorithm.entry_set(enabled, history)
            if not used_history and (len(enabled) == 1 or len(self.entries) < ENTRY_SETS):
                self.entries[key] = found
        return found
