"""The turn queue keeps giving turns after one of them raised (a bug in one session must not
leave every session that yields later waiting for ever)."""

from __future__ import annotations

import logging

from engine.scxml.clock import Clock
from engine.scxml.turns import TurnQueue
from tests.support.eventually import eventually


class Yielder:
    """A session as the queue sees it: counts its turns; ``fails`` raises on its first one."""

    def __init__(self, fails: bool = False):
        self.turns = 0
        self.fails = fails

    def continue_turn(self, until: float) -> None:
        self.turns += 1
        if self.fails and self.turns == 1:
            raise RuntimeError("a bug in this session's turn")

    def drain_scheduled(self) -> None:
        pass


async def test_a_turn_that_raises_is_logged_and_the_others_still_run(caplog) -> None:
    turns = TurnQueue(Clock(), 0.001)
    bad, good = Yielder(fails=True), Yielder()
    with caplog.at_level(logging.ERROR, "engine.scxml"):
        turns.add(bad)
        turns.add(good)
        await eventually(lambda: good.turns, lambda n: n == 1, timeout=2, expected="the second session's turn")
    assert bad.turns == 1
    assert "a turn of session" in caplog.text and "a bug in this session's turn" in caplog.text
    # The queue is not left armed without a slice coming: a session yielding later gets its turn.
    later = Yielder()
    turns.add(later)
    await eventually(lambda: later.turns, lambda n: n == 1, timeout=2, expected="a later session's turn")
    assert len(turns) == 0

