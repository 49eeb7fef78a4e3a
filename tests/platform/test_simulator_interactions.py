"""A session with several interactions in the simulator (its ids are kept as a tuple per
session, each interaction's queue key made once): cancelling one keeps the others, dropping the
session removes all of them, and a waiting and seeking interaction leaves both lists."""

from __future__ import annotations

from engine.platform import Simulator
from tests.platform.helpers import config, make, turn


def created(sim: Simulator, sid: str, queue: str) -> str:
    sim.handle(sid, "vixn.create", {"queue": queue})
    return sim._by_session[sid][-1]


async def test_cancelling_one_interaction_keeps_the_sessions_others() -> None:
    sim, rec, _ = make(config({"Q": {"agents": 0, "handle_seconds": 10}, "R": {"agents": 0, "handle_seconds": 10}}))
    first, second = created(sim, "s1", "Q"), created(sim, "s1", "R")
    other = created(sim, "s2", "Q")
    assert sim._by_session["s1"] == (first, second)
    sim.handle("s1", "vixn.cancel", {"vixn_id": first})
    await turn()
    assert rec.named("vixn.cancelled", "s1")[0]["vixn_id"] == first
    assert sim._by_session["s1"] == (second,)
    position = sim.position("s1")
    assert position is not None and (position.queue, position.position) == ("R", 1)
    assert sim.position("s2") is not None and sim.position("s2").position == 1  # s1 left Q before it
    sim.handle("s1", "vixn.cancel", {"vixn_id": second})
    assert "s1" not in sim._by_session and sim.position("s1") is None
    assert sim._by_session["s2"] == (other,)


async def test_dropping_a_session_removes_its_waiting_and_seeking_interactions() -> None:
    sim, _, _ = make(config({"Q": {"agents": 0, "handle_seconds": 10}}))
    ids = [created(sim, "s1", "Q") for _ in range(3)]
    keep = created(sim, "s2", "Q")
    sim.handle("s1", "target.find", {"vixn_id": ids[1]})  # seeking too: in both lists
    queue = sim._queues["Q"]
    assert len(queue.waiting) == 4 and len(queue.seekers) == 1
    assert queue.seekers[0] is sim._vixns[ids[1]].key  # one tuple, held by both lists
    sim.drop("s1")
    assert "s1" not in sim._by_session and not any(v in sim._vixns for v in ids)
    assert [key[2] for key in queue.waiting] == [keep] and queue.seekers == []
    assert sim.queue_stats("Q").waiting == 1
