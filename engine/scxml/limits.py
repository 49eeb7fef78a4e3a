"""The guards of a session host, in a module of their own so that the ports of the lower layers
(an invoker reads ``max_invoke_depth``) can name them without importing the host."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Limits:
    """Guards against runaway documents and for fairness between sessions.

    ``max_microsteps`` and ``max_invoke_depth`` fail the session at once. The fairness budgets
    are explained in ``session.py``: a turn ends (the session yields to the event loop) after
    ``macrosteps_per_turn`` macrosteps or ``turn_seconds``; ``max_foreach_items`` and
    ``max_sends_per_second`` refuse the work with ``error.execution`` and fail a session that
    goes over one of them again within a second.
    """

    max_microsteps: int = 10_000
    max_invoke_depth: int = 16
    macrosteps_per_turn: int = 100
    turn_seconds: float = 0.02
    max_foreach_items: int = 10_000
    max_sends_per_second: int = 1_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"limit {f.name} must be a positive number, not {value!r}")
