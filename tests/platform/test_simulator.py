"""The embedded simulator through its Platform API, on a scaled clock (a simulated second = 1 ms)."""

from __future__ import annotations

import json

import pytest

from engine.platform import Platform, Position, Simulator, SimulatorConfig
from engine.platform import simulator as simulator_module
from tests.platform.helpers import SLACK, advance, config, make, turn


def queue_up(sim: Simulator, sessions: list[str], queue: str = "Q", **extra) -> dict[str, str]:
    """Each session creates an interaction; returns session -> vixn id (read from the answers)."""
    for sid in sessions:
        sim.handle(sid, "vixn.create", {"queue": queue, **extra})
    return {sid: vixn.vixn_id for sid in sessions for vixn in [sim._vixns[sim._by_session[sid][-1]]]}


async def test_simulator_is_a_platform() -> None:
    sim, _, _ = make()
    assert isinstance(sim, Platform)


async def test_fifo_targets_with_limited_agents_and_agents_freed_after_handle_time() -> None:
    sim, rec, clock = make(config({"Q": {"agents": 2, "handle_seconds": 100}}, route_seconds=1))
    sessions = ["s1", "s2", "s3", "s4"]
    for sid in sessions:
        sim.handle(sid, "vixn.create", {"queue": "Q", "request_id": f"c-{sid}"})
    await turn()
    created = {sid: rec.named("vixn.created", sid)[0] for sid in sessions}
    assert created["s1"]["queue"] == "Q" and created["s1"]["request_id"] == "c-s1"
    for sid in sessions:
        sim.handle(sid, "target.find", {"vixn_id": created[sid]["vixn_id"], "request_id": f"f-{sid}"})
    await rec.event("target.found", count=2)
    assert rec.sessions("target.found") == ["s1", "s2"]
    found = {sid: rec.named("target.found", sid)[0] for sid in ("s1", "s2")}
    assert found["s1"]["agent_id"] != found["s2"]["agent_id"]
    assert found["s1"]["request_id"] == "f-s1" and found["s1"]["vixn_id"] == created["s1"]["vixn_id"]
    target = found["s1"]["target"]
    assert set(target) == {"agent", "dn", "id", "place", "resource", "return", "stat_value", "switch", "type", "vq"}
    assert target["agent"] == found["s1"]["agent_id"] and target["dn"] == found["s1"]["agent_extension"]
    assert (target["return"], target["stat_value"], target["type"], target["vq"]) == ("target", "0", "GA", "Q")
    stats = sim.queue_stats("Q")
    assert (stats.waiting, stats.agents_staffed, stats.agents_busy, stats.agents_free) == (2, 2, 2, 0)

    start = clock.now()
    sim.handle("s1", "route", {"agent_id": found["s1"]["agent_id"], "request_id": "r-s1"})
    done = await rec.event("route.done", "s1")
    assert done == {"agent_id": found["s1"]["agent_id"], "agent_extension": found["s1"]["agent_extension"],
                    "request_id": "r-s1"}
    ended = await rec.event("call.ended", "s1")
    assert ended == {"agent_id": found["s1"]["agent_id"], "handle_seconds": 100.0, "request_id": "r-s1"}
    assert rec.time_of("call.ended", "s1") - start >= 101 - SLACK  # route + handle
    # The freed agent goes to the first seeker still waiting: s3, not s4.
    third = await rec.event("target.found", count=3)
    assert rec.sessions("target.found") == ["s1", "s2", "s3"]
    assert third["agent_id"] == found["s1"]["agent_id"] and third["request_id"] == "f-s3"
    assert rec.time_of("target.found", "s3") >= rec.time_of("call.ended", "s1")
    assert sim.queue_stats("Q").avg_handle_seconds == 100.0
    sim.handle("s2", "route", {"agent_id": found["s2"]["agent_id"]})
    await rec.event("target.found", "s4")
    assert rec.sessions("target.found") == ["s1", "s2", "s3", "s4"]
    sim.close()


async def test_higher_priority_first_and_only_seekers_compete() -> None:
    sim, rec, _ = make()
    ids = queue_up(sim, ["holder"])
    sim.handle("holder", "target.find", {"vixn_id": ids["holder"]})
    await rec.event("target.found", "holder")
    ids |= queue_up(sim, ["idle"])  # waits first but never asks for an agent
    ids |= queue_up(sim, ["low"])
    ids |= queue_up(sim, ["high"], priority=5)
    assert [sim.position(s).position for s in ("high", "idle", "low")] == [1, 2, 3]  # type: ignore[union-attr]
    sim.handle("low", "target.find", {"vixn_id": ids["low"]})
    sim.handle("high", "target.find", {"vixn_id": ids["high"]})
    agent = rec.named("target.found", "holder")[0]["agent_id"]
    sim.handle("holder", "agent.release", {"agent_id": agent, "request_id": "rel"})
    await rec.event("target.found", "high")
    assert rec.named("agent.released", "holder") == [{"agent_id": agent, "request_id": "rel"}]
    assert rec.sessions("target.found") == ["holder", "high"]
    # The released interaction is back at the head of the queue, no longer seeking.
    assert sim.position("holder") == Position("Q", 1, 3, sim.position("holder").ewt_seconds)  # type: ignore[union-attr]
    sim.handle("high", "vixn.cancel", {"vixn_id": ids["high"]})
    await rec.event("target.found", "low")
    assert rec.sessions("target.found") == ["holder", "high", "low"]
    assert rec.named("vixn.cancelled", "high") == [{"vixn_id": ids["high"]}]


async def test_scripted_sequences_per_number() -> None:
    sim, rec, clock = make(SimulatorConfig(seed=1))  # the embedded defaults: the example rules
    start = clock.now()
    plan = [("+15550010000", 1), ("+15550010000", 2), ("+15550010000", 3), ("+15550000000", 1),
            ("+15550000000", 2), ("+15550020000", 1), ("+15550030000", 1), ("+15557654321", 1)]
    for i, (number, attempt) in enumerate(plan):
        sim.handle("s", "dial", {"number": number, "attempt": attempt, "request_id": i})
    await rec.event("dial.result", count=len(plan))
    results = sorted(rec.named("dial.result"), key=lambda d: d["request_id"])
    assert [(d["number"], d["attempt"], d["result"], d["code"]) for d in results] == [
        ("+15550010000", 1, "busy", 1), ("+15550010000", 2, "answer", 0), ("+15550010000", 3, "answer", 0),
        ("+15550000000", 1, "busy", 1), ("+15550000000", 2, "busy", 1), ("+15550020000", 1, "no_answer", 2),
        ("+15550030000", 1, "answering_machine", 3), ("+15557654321", 1, "answer", 0),
    ]
    assert rec.time_of("dial.result", "s") - start >= 8 - SLACK  # ring_seconds
    sim.close()


async def test_default_outcome_and_error_code() -> None:
    sim, rec, _ = make(config(default_outcome="error", ring_seconds=0))
    sim.handle("s", "dial", {"number": "123"})
    assert await rec.event("dial.result") == {"number": "123", "attempt": 1, "result": "error", "code": 4}


def probabilistic(seed: int) -> SimulatorConfig:
    rules = [{"pattern": "^\\+1666", "probabilities": {"answer": 6, "busy": 3, "no_answer": 1}},
             {"pattern": "^\\+1777", "probabilities": {"answering_machine": 1, "busy": 0}}]
    return config(dial_rules=rules, seed=seed, ring_seconds=1)


async def draws(conf: SimulatorConfig, numbers: list[str]) -> list[str]:
    sim, rec, _ = make(conf)
    for i, number in enumerate(numbers):
        sim.handle("s", "dial", {"number": number, "request_id": i})
    await rec.event("dial.result", count=len(numbers))
    return [d["result"] for d in sorted(rec.named("dial.result"), key=lambda d: d["request_id"])]


async def test_probability_rules_are_seeded_and_deterministic() -> None:
    numbers = [f"+1666{i:07d}" for i in range(200)]
    first = await draws(probabilistic(11), numbers)
    assert first == await draws(probabilistic(11), numbers)
    assert first != await draws(probabilistic(12), numbers)
    assert set(first) == {"answer", "busy", "no_answer"}
    assert first.count("answer") > first.count("busy") > first.count("no_answer")
    assert await draws(probabilistic(11), ["+17770000000"] * 5) == ["answering_machine"] * 5


async def test_ewt_formula_without_and_with_history_and_unknown_without_agents() -> None:
    conf = config({"Q": {"agents": 2, "handle_seconds": 40}, "Empty": {"agents": 0}},
                  default_handle_seconds=120, route_seconds=0)
    sim, rec, _ = make(conf)
    stats = sim.queue_stats("Q")
    assert (stats.avg_handle_seconds, stats.ewt_seconds) == (None, 60.0)  # 120 x 1 / 2
    ids = queue_up(sim, ["a", "b", "c"])
    assert sim.queue_stats("Q").ewt_seconds == 120.0 * 4 / 2
    assert sim.position("b") == Position("Q", 2, 3, 120.0)
    sim.handle("a", "target.find", {"vixn_id": ids["a"]})
    await rec.event("target.found", "a")
    sim.handle("a", "route", {"agent_id": rec.named("target.found", "a")[0]["agent_id"]})
    await rec.event("call.ended", "a")
    stats = sim.queue_stats("Q")
    assert stats.avg_handle_seconds == 40.0
    assert stats.ewt_seconds == 40.0 * 3 / 2  # b and c wait, a new arrival is third
    assert sim.position("c") == Position("Q", 2, 2, 40.0)
    empty = sim.queue_stats("Empty")
    assert (empty.agents_staffed, empty.ewt_seconds) == (0, -1)
    queue_up(sim, ["d"], queue="Empty")
    assert sim.position("d") == Position("Empty", 1, 1, -1)
    with pytest.raises(KeyError):
        sim.queue_stats("Nope")


async def test_ewt_averages_the_last_32_calls() -> None:
    sim, rec, _ = make(config({"Q": {"agents": 4, "handle_seconds": 10}}, route_seconds=0), scale=10_000)
    for batch, seconds in ((8, 10), (32, 20)):
        sim.reconfigure(config({"Q": {"agents": 4, "handle_seconds": seconds}}, route_seconds=0))
        before = len(rec.named("call.ended"))
        sessions = [f"{seconds}-{i}" for i in range(batch)]
        ids = queue_up(sim, sessions)
        for sid in sessions:
            sim.handle(sid, "target.find", {"vixn_id": ids[sid]})
        for sid in sessions:
            found = await rec.event("target.found", sid)
            sim.handle(sid, "route", {"agent_id": found["agent_id"]})
        await rec.event("call.ended", count=before + batch)
    stats = sim.queue_stats("Q")
    assert stats.avg_handle_seconds == 20.0
    assert stats.ewt_seconds == 20.0 * 1 / 4


async def test_positions() -> None:
    sim, rec, _ = make(config({"Q": {"agents": 1, "handle_seconds": 60}}, default_handle_seconds=60))
    ids = queue_up(sim, ["a", "b", "c"])
    assert sim.position("nobody") is None
    assert [sim.position(s) for s in "abc"] == [Position("Q", i, 3, 60.0 * i) for i in (1, 2, 3)]
    sim.handle("a", "vixn.cancel", {"vixn_id": ids["a"]})
    assert sim.position("a") is None
    assert sim.position("b") == Position("Q", 1, 2, 60.0)
    sim.handle("c", "target.find", {"vixn_id": ids["c"]})  # b does not seek: c gets the agent
    await rec.event("target.found", "c")
    assert sim.position("c") is None  # served: no longer waiting
    assert sim.position("b") == Position("Q", 1, 1, 60.0)


async def test_callin_registration_matching_and_expiry() -> None:
    sim, rec, clock = make(config(callin_valid_seconds=50, access_number="+18005550199"))
    before = clock.now()
    sim.handle("s", "callin.register", {"number": "+15551230000", "request_id": "reg"})
    reg = await rec.event("callin.registered", "s")
    assert reg["access_number"] == "+18005550199" and reg["request_id"] == "reg"
    assert len(reg["access_code"]) == 6 and reg["access_code"].isdigit()
    assert int(before + 50) <= reg["expires"] <= clock.now() + 50
    assert sim.call_in("+15551230000", "999999" if reg["access_code"] != "999999" else "000000") is None
    assert sim.call_in("+15551230000", reg["access_code"]) == "s"
    assert rec.named("callin.arrived", "s") == [
        {"number": "+15551230000", "access_code": reg["access_code"], "request_id": "reg"}]
    assert sim.call_in("+15551230000", reg["access_code"]) is None  # used up

    sim.handle("t", "callin.register", {"number": "+15551230001", "vixn_id": "v-1"})
    code = (await rec.event("callin.registered", "t"))["access_code"]
    await advance(clock, 60)
    assert sim.call_in("+15551230001", code) is None  # expired
    assert rec.named("callin.arrived", "t") == []


async def test_callin_codes_are_unique_while_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    sim, rec, _ = make()
    draws = iter([42, 42, 42, 7])
    monkeypatch.setattr(simulator_module.secrets, "randbelow", lambda n: next(draws))
    sim.handle("a", "callin.register", {"number": "1"})
    sim.handle("b", "callin.register", {"number": "2"})
    await rec.event("callin.registered", "b")
    assert [d["access_code"] for d in rec.named("callin.registered")] == ["000042", "000007"]
    monkeypatch.undo()
    for i in range(300):
        sim.handle(f"s{i}", "callin.register", {"number": str(i)})
    await rec.event("callin.registered", count=302)
    codes = [d["access_code"] for d in rec.named("callin.registered")]
    assert len(set(codes)) == len(codes)
    # A new registration of the same session replaces its old code.
    sim.handle("a", "callin.register", {"number": "1"})
    new = (await rec.event("callin.registered", "a", count=2))["access_code"]
    assert sim.call_in("1", "000042") is None
    assert sim.call_in("1", new) == "a"


async def test_auto_callin_for_unattended_runs() -> None:
    sim, rec, clock = make(config(auto_callin_seconds=30))
    start = clock.now()
    sim.handle("s", "callin.register", {"number": "+15550009999", "vixn_id": "vx-1"})
    arrived = await rec.event("callin.arrived", "s")
    assert arrived["number"] == "+15550009999" and arrived["vixn_id"] == "vx-1"
    assert rec.time_of("callin.arrived", "s") - start >= 30 - SLACK


async def test_drop_releases_agents_leaves_queues_and_cancels_timers() -> None:
    sim, rec, clock = make(config(ring_seconds=10, treatment_seconds=10, auto_callin_seconds=10))
    ids = queue_up(sim, ["gone", "next"])
    sim.handle("gone", "target.find", {"vixn_id": ids["gone"]})
    sim.handle("next", "target.find", {"vixn_id": ids["next"]})
    sim.handle("gone", "dial", {"number": "+1"})
    sim.handle("gone", "treatment.play", {})
    sim.handle("gone", "callin.register", {"number": "+1"})
    await rec.event("target.found", "gone")
    code = rec.named("callin.registered", "gone")[0]["access_code"]
    count = len(rec.events)
    sim.drop("gone")
    found = await rec.event("target.found", "next")
    assert found["agent_id"] == rec.named("target.found", "gone")[0]["agent_id"]
    assert sim.call_in("+1", code) is None
    assert sim._timers.get("gone") is None
    await advance(clock, 20)
    assert [e for e in rec.events[count:] if e[1] == "gone"] == []


async def test_drop_mid_call_lets_the_call_finish_silently() -> None:
    sim, rec, _ = make(config({"Q": {"agents": 1, "handle_seconds": 30}}, route_seconds=1))
    ids = queue_up(sim, ["a", "b"])
    sim.handle("a", "target.find", {"vixn_id": ids["a"]})
    sim.handle("b", "target.find", {"vixn_id": ids["b"]})
    agent = (await rec.event("target.found", "a"))["agent_id"]
    sim.handle("a", "route", {"agent_id": agent})
    await rec.event("route.done", "a")
    sim.drop("a")
    assert sim.queue_stats("Q").agents_busy == 1
    await rec.event("target.found", "b")  # the agent is freed when the call ends
    assert rec.named("call.ended", "a") == []
    assert sim.queue_stats("Q").avg_handle_seconds == 30.0


async def test_cancel_releases_the_reserved_agent() -> None:
    sim, rec, _ = make()
    ids = queue_up(sim, ["a", "b"])
    sim.handle("a", "target.find", {"vixn_id": ids["a"]})
    sim.handle("b", "target.find", {"vixn_id": ids["b"]})
    await rec.event("target.found", "a")
    assert sim.queue_stats("Q").agents_free == 0
    sim.handle("a", "vixn.cancel", {"vixn_id": ids["a"], "request_id": 9})
    await rec.event("target.found", "b")
    assert rec.named("vixn.cancelled", "a") == [{"vixn_id": ids["a"], "request_id": 9}]


async def test_route_to_a_named_free_agent_and_treatment() -> None:
    sim, rec, clock = make(config({"Q": {"agents": 1, "handle_seconds": 5}}, treatment_seconds=7))
    agent = sim.snapshot()["queues"]["Q"]["agents"][0]
    sim.handle("s", "route", {"agent_id": agent["agent_id"]})
    await rec.event("call.ended", "s")
    assert rec.named("route.done", "s")[0]["agent_extension"] == agent["extension"]
    start = clock.now()
    sim.handle("s", "treatment.play", {"name": "music"})
    sim.handle("s", "treatment.play", {"seconds": 1, "request_id": "short"})
    await rec.event("treatment.done", "s", count=2)
    assert rec.named("treatment.done") == [{"seconds": 1.0, "request_id": "short"},
                                           {"seconds": 7.0, "name": "music"}]
    assert rec.time_of("treatment.done", "s") - start >= 1 - SLACK


@pytest.mark.parametrize(("request_name", "data", "reason"), [
    ("transfer", {}, "unknown request"),
    ("vixn.create", {"queue": "Nope"}, "unknown queue 'Nope'"),
    ("vixn.create", {}, "missing queue"),
    ("vixn.create", {"queue": "Q", "priority": "high"}, "priority must be an integer, not 'high'"),
    ("target.find", {"vixn_id": "vx-unknown"}, "unknown interaction 'vx-unknown'"),
    ("dial", {"attempt": 1}, "missing number"),
    ("route", {"agent_id": "nobody"}, "unknown agent 'nobody'"),
    ("agent.release", {"agent_id": "Q.agent1"}, "agent Q.agent1 is not reserved by this session"),
    ("treatment.play", {"seconds": -1}, "seconds must be a number of seconds >= 0, not -1"),
])
async def test_bad_requests_answer_platform_error(request_name: str, data: dict, reason: str) -> None:
    sim, rec, _ = make()
    sim.handle("s", request_name, {**data, "request_id": "x"})
    assert rec.events == []  # answers never arrive inside the caller's step
    assert await rec.event("platform.error", "s") == {"request": request_name, "reason": reason, "request_id": "x"}


async def test_interactions_belong_to_their_session() -> None:
    sim, rec, _ = make()
    ids = queue_up(sim, ["a"])
    sim.handle("b", "target.find", {"vixn_id": ids["a"]})
    sim.handle("b", "vixn.cancel", {"vixn_id": ids["a"]})
    await rec.event("platform.error", "b", count=2)
    assert sim.position("a") is not None


async def test_listeners_hear_each_changed_queue_once_per_change() -> None:
    sim, rec, _ = make(config({"Q": {"agents": 1, "handle_seconds": 10}, "R": {"agents": 1}}, route_seconds=0))
    heard: list[str] = []
    sim.add_listener(heard.append)
    ids = queue_up(sim, ["a"])
    assert heard == ["Q"]
    sim.handle("a", "target.find", {"vixn_id": ids["a"]})
    assert heard == ["Q", "Q"]
    agent = (await rec.event("target.found", "a"))["agent_id"]
    sim.handle("a", "route", {"agent_id": agent})
    await rec.event("call.ended", "a")
    assert heard == ["Q"] * 4  # create, reserve, route, call end
    sim.handle("x", "dial", {"number": "1"})
    assert heard == ["Q"] * 4
    sim.remove_listener(heard.append)
    queue_up(sim, ["b"])
    assert heard == ["Q"] * 4


async def test_reconfigure_staffing_handle_times_and_rules() -> None:
    sim, rec, _ = make(config({"Q": {"agents": 1, "handle_seconds": 50}}, route_seconds=0))
    heard: list[str] = []
    sim.add_listener(heard.append)
    ids = queue_up(sim, ["a", "b", "c"])
    for sid in "abc":
        sim.handle(sid, "target.find", {"vixn_id": ids[sid]})
    await rec.event("target.found", "a")
    heard.clear()
    # More agents serve the waiting seekers at once; a new queue appears; rules change.
    rules = [{"pattern": "^9", "sequence": ["no_answer"]}]
    sim.reconfigure(config({"Q": {"agents": 3, "handle_seconds": 20}, "New": {"agents": 1}},
                           route_seconds=0, dial_rules=rules, time_scale=500))
    assert sorted(heard) == ["New", "Q"]
    await rec.event("target.found", "c")
    assert sim.queue_stats("New").agents_staffed == 1
    assert sim.config.time_scale == 500
    sim.handle("a", "dial", {"number": "9000"})
    assert (await rec.event("dial.result", "a"))["result"] == "no_answer"
    # Fewer agents: free ones leave at once, busy ones when their call ends.
    sim.handle("a", "route", {"agent_id": rec.named("target.found", "a")[0]["agent_id"]})
    sim.reconfigure(config({"Q": {"agents": 1, "handle_seconds": 20}, "New": {"agents": 1}}, route_seconds=0))
    stats = sim.queue_stats("Q")
    assert (stats.agents_staffed, stats.agents_busy, stats.agents_free) == (1, 1, 0)
    assert len(sim.snapshot()["queues"]["Q"]["agents"]) == 3  # two reserved/busy ones finishing up
    ended = await rec.event("call.ended", "a")
    assert ended["handle_seconds"] == 20.0  # the new handle time applies to the next call
    assert [a["retiring"] for a in sim.snapshot()["queues"]["Q"]["agents"]] == [False, True, True]
    sim.handle("b", "agent.release", {"agent_id": rec.named("target.found", "b")[0]["agent_id"]})
    assert [a["agent_id"] for a in sim.snapshot()["queues"]["Q"]["agents"]] == ["Q.agent1", "Q.agent3"]
    assert sim.queue_stats("Q").agents_staffed == 1
    # A queue with waiting interactions cannot be removed; an empty one can.
    with pytest.raises(ValueError, match=r"queues\.Q: cannot remove"):
        sim.reconfigure(config({"New": {"agents": 1}}))
    sim.reconfigure(config({"Q": {"agents": 1, "handle_seconds": 20}}))
    assert sim.queues == ["Q"]
    sim.close()


async def test_snapshot_is_json() -> None:
    sim, rec, _ = make(SimulatorConfig(seed=3))
    ids = queue_up(sim, ["a", "b"], queue="Callback_VQ")
    sim.handle("a", "target.find", {"vixn_id": ids["a"]})
    await rec.event("target.found", "a")
    snap = json.loads(json.dumps(sim.snapshot()))
    q = snap["queues"]["Callback_VQ"]
    assert (q["waiting"], q["agents_staffed"], q["agents_busy"], q["agents_free"]) == (1, 3, 1, 2)
    assert [i["session_id"] for i in q["interactions"]] == ["b"]
    assert q["reserved"] == [ids["a"]]
    assert {a["state"] for a in q["agents"]} == {"free", "reserved"}
    assert SimulatorConfig.from_dict(snap["config"]) == sim.config
    assert set(snap["queues"]) == {"Callback_VQ", "Support_VQ"}


async def test_the_longest_idle_free_agent_serves_next_even_after_named_routes_and_staffing() -> None:
    """Agents are chosen longest idle first (ties: the one staffed first), from a heap whose
    entries go stale when an agent is routed by name, taken, or logged off."""
    sim, rec, _ = make(config({"Q": {"agents": 3, "handle_seconds": 5}}, route_seconds=0))
    ids = queue_up(sim, ["a", "b"])
    for sid in ("a", "b"):
        sim.handle(sid, "target.find", {"vixn_id": ids[sid]})
    await rec.event("target.found", count=2)
    first = {sid: rec.named("target.found", sid)[0]["agent_id"] for sid in ("a", "b")}
    assert first == {"a": "Q.agent1", "b": "Q.agent2"}  # equal idle time: staffing order
    sim.handle("a", "route", {"agent_id": "Q.agent1"})
    await rec.event("call.ended", "a")  # agent1 is free again, idle for less time than agent3
    sim.handle("x", "route", {"agent_id": "Q.agent3"})  # a named route takes agent3 without a search
    ids |= queue_up(sim, ["c"])
    sim.handle("c", "target.find", {"vixn_id": ids["c"]})
    assert (await rec.event("target.found", "c"))["agent_id"] == "Q.agent1"
    sim.reconfigure(config({"Q": {"agents": 5, "handle_seconds": 5}}, route_seconds=0))
    ids |= queue_up(sim, ["d"])
    sim.handle("d", "target.find", {"vixn_id": ids["d"]})
    assert (await rec.event("target.found", "d"))["agent_id"] == "Q.agent4"
    sim.close()
