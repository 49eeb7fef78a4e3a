"""The interner behind the values waiting sessions share: one value per key, made once, and
bounded (all forgotten when full, so a flood of distinct keys cannot grow it)."""

from __future__ import annotations

from engine.scxml.interning import Interner, itself


def test_one_value_per_key_made_once() -> None:
    made: list[tuple[str, ...]] = []
    interner: Interner[tuple[str, ...], list[str]] = Interner(10)

    def make(key: tuple[str, ...]) -> list[str]:
        made.append(key)
        return list(key)

    first = interner.get(("a", "b"), make)
    assert interner.get(("a", "b"), make) is first
    assert made == [("a", "b")]
    assert interner.get(tuple("ab"), itself) is first  # an equal key: the value already made


def test_bounded_by_forgetting_all_when_full() -> None:
    interner: Interner[int, str] = Interner(3)
    held = [interner.get(n, str) for n in range(3)]
    assert len(interner) == 3
    interner.get(99, str)
    assert len(interner) == 1  # the three forgotten, the new one kept
    assert held == ["0", "1", "2"]  # values handed out stay valid


def test_a_none_value_is_kept_like_any_other() -> None:
    made: list[str] = []
    interner: Interner[str, None] = Interner(10)

    def make(key: str) -> None:
        made.append(key)

    assert interner.get("x", make) is None
    assert interner.get("x", make) is None
    assert made == ["x"]  # made once: a None answer is an answer, not a miss
