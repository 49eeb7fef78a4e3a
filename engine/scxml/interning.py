"""Values that many waiting sessions hold alike (a flow's variable names, a configuration), kept
once: tens of thousands of sessions wait at once, and each copy of its own costs all of them."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_ABSENT: Any = object()


class Interner(Generic[K, V]):
    """The one value for each key, made on first use (None too). Bounded: when ``limit`` keys are
    held, all are forgotten at once (values already handed out stay valid; later ones are made anew)."""

    __slots__ = ("_limit", "_values")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._values: dict[K, V] = {}

    def get(self, key: K, make: Callable[[K], V]) -> V:
        found = self._values.get(key, _ABSENT)
        if found is _ABSENT:
            if len(self._values) >= self._limit:
                self._values.clear()
            found = self._values[key] = make(key)
        return found

    def __len__(self) -> int:
        return len(self._values)


def itself(key: K) -> K:
    """``make`` for keys that are their own value (a tuple of names)."""
    return key
