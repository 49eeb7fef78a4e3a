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


async def test_agents_are_found_by_session_and_forgotten_when_free() -> None:
    """``drop`` reaches a session's agents through an index, not a scan of every agent: the
    index must hold what the scan found (reserved and mid-call agents) and nothing once free."""
    sim, rec, _ = make(config({"Q": {"agents": 3, "handle_seconds": 5}}, route_seconds=1))
    ids = {sid: created(sim, sid, "Q") for sid in ("s1", "s2", "s3")}
    for sid, vixn_id in ids.items():
        sim.handle(sid, "target.find", {"vixn_id": vixn_id})
    await rec.event("target.found", count=3)
    assert {sid: [a.agent_id for a in agents] for sid, agents in sim._engaged.items()} == {
        sid: [sim._vixns[v].agent_id] for sid, v in ids.items()}
    sim.handle("s1", "route", {"agent_id": sim._vixns[ids["s1"]].agent_id})  # s1 in a call
    busy = sim._engaged["s1"][0]
    sim.drop("s1")  # mid-call: the call goes on, telling nobody
    sim.drop("s2")  # reserved: the agent is free at once
    assert busy.state == "busy" and busy.session_id is None
    assert set(sim._engaged) == {"s3"} and sim.queue_stats("Q").agents_free == 1
    reserved = sim._engaged["s3"][0]
    sim.handle("s3", "agent.release", {"agent_id": reserved.agent_id})
    assert sim._engaged == {}
    await rec.event("agent.released", "s3")
    assert not rec.named("call.ended", "s1")


async def test_interaction_ids_are_unique_per_simulator_and_between_simulators() -> None:
    first, _, _ = make(config({"Q": {"agents": 0, "handle_seconds": 10}}))
    second, _, _ = make(config({"Q": {"agents": 0, "handle_seconds": 10}}))
    made = [created(sim, f"s{i}", "Q") for i in range(50) for sim in (first, second)]
    assert len(set(made)) == 100 and all(v.startswith("vx-") and len(v) == 19 for v in made)
