"""Fairness budgets of a session (issue 9 item 9): yielding after a turn, the foreach cap and the
send-rate cap, each with its escalation (error.execution first, failing if it goes on)."""

from __future__ import annotations

import asyncio

import pytest

from engine.scxml import FAILED, FINISHED, RUNNING, Document, Event, Limits, Session, SessionHost
from engine.scxml import session as session_module
from engine.scxml.snapshot import decode_state, encode_state
from tests.scxml.documents import scxml
from tests.support.eventually import eventually

# Twelve events sent to itself at start, each recorded in arrival order.
TICKS = scxml(
    '<datamodel><data id="seen" expr="[]"/></datamodel>'
    '<state id="s"><onentry><foreach array="range(12)" item="i">'
    '<send event="tick"><param name="i" expr="i"/></send></foreach></onentry>'
    "<transition event=\"tick\"><assign location=\"seen\" expr=\"seen + [_event.data['i']]\"/></transition>"
    "<transition event=\"late\"><assign location=\"seen\" expr=\"seen + ['late']\"/></transition>"
    "</state>"
)

# A self-send loop that stops on its own after `rounds` rounds, logging into a shared list.
LOOP = scxml(
    '<datamodel><data id="log"/><data id="me"/><data id="n" expr="0"/><data id="rounds" expr="300"/>'
    '<data id="errors" expr="[]"/></datamodel>'
    '<state id="s"><onentry><send event="ping"/></onentry>'
    '<transition event="ping" cond="n &lt; rounds"><assign location="n" expr="n + 1"/>'
    '<script>log.append(me)</script><send event="ping"/></transition>'
    '<transition event="ping" target="done"/>'
    '<transition event="error.execution"><assign location="errors" expr="errors + [_event.data.message]"/>'
    "</transition></state><final id=\"done\"/>"
)


async def settle(*sessions, timeout: float = 10.0) -> None:
    """Until no session has work left (yielded sessions wait for slices of the loop)."""
    await eventually(lambda: not any(s.is_running and s.has_queued_events for s in sessions),
                     timeout=timeout, expected="the sessions settled")


def longest_run(items: list) -> int:
    best = run = 0
    for i, item in enumerate(items):
        run = run + 1 if i and items[i - 1] == item else 1
        best = max(best, run)
    return best


# ---------------------------------------------------------------- turns
async def test_a_session_yields_after_its_macrosteps_per_turn_and_keeps_the_order() -> None:
    host = SessionHost(limits=Limits(macrosteps_per_turn=5, turn_seconds=0.2))
    session = host.start_session(TICKS)
    assert session.datamodel.variable("seen") == [0, 1, 2, 3, 4]  # the rest waits for the next turn
    assert [e.name for e in session.to_state().external] == ["tick"] * 7
    session.deliver(Event("late"))
    await settle(session)
    assert session.datamodel.variable("seen") == [*range(12), "late"]  # the late event still comes last


async def test_a_synchronous_send_is_processed_even_with_a_budget_of_one() -> None:
    host = SessionHost(limits=Limits(macrosteps_per_turn=1, turn_seconds=0.2))
    session = host.start_session(TICKS)
    assert session.datamodel.variable("seen") == [0]
    await settle(session)
    session.send("late")
    assert session.datamodel.variable("seen")[-1] == "late"


async def test_two_runaway_sessions_take_turns() -> None:
    host = SessionHost()  # the shipped budget: 100 macrosteps per turn
    log: list[str] = []
    a = host.start_session(LOOP, data={"log": log, "me": "a"})
    b = host.start_session(LOOP, data={"log": log, "me": "b"})
    await settle(a, b)
    assert a.status == b.status == FINISHED
    assert log.count("a") == log.count("b") == 300
    assert longest_run(log) <= 100, longest_run(log)  # one session never ran 300 rounds in a row


async def test_a_turn_also_ends_after_turn_seconds() -> None:
    heavy = scxml(
        '<datamodel><data id="n" expr="0"/><data id="t" expr="0"/></datamodel>'
        '<state id="s"><onentry><foreach array="range(10)" item="i"><send event="work"/></foreach></onentry>'
        '<transition event="work"><foreach array="range(5000)" item="x">'
        '<assign location="t" expr="t + x"/></foreach><assign location="n" expr="n + 1"/></transition>'
        "</state>"
    )
    host = SessionHost(limits=Limits(macrosteps_per_turn=1000, turn_seconds=0.001))
    session = host.start_session(heavy)
    assert 1 <= session.datamodel.variable("n") < 10  # each macrostep takes longer than a millisecond
    # The loop runs other callbacks before the session is done: it gets slices, not the loop.
    seen_between: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: seen_between.append(session.datamodel.variable("n")))
    await settle(session)
    assert session.datamodel.variable("n") == 10
    assert len(seen_between) == 1 and seen_between[0] < 10, seen_between


async def test_a_long_macrostep_is_cut_between_microsteps_but_no_event_overtakes_it() -> None:
    doc = scxml(
        '<datamodel><data id="log" expr="[]"/></datamodel>'
        '<state id="s"><onentry><foreach array="range(3000)" item="i"><raise event="step"/></foreach></onentry>'
        '<transition event="step"><assign location="log" expr="log + [1]"/></transition>'
        "<transition event=\"ext\"><assign location=\"log\" expr=\"log + ['ext']\"/></transition>"
        "</state>"
    )
    host = SessionHost(limits=Limits(turn_seconds=0.001))
    session = host.start_session(doc)
    assert session.status == RUNNING and len(session.datamodel.variable("log")) < 3000  # cut mid-way
    session.send("ext")  # a synchronous event in the middle of the macrostep waits for its end
    await settle(session)
    assert session.datamodel.variable("log") == [1] * 3000 + ["ext"]


async def test_a_macrostep_cut_mid_way_is_finished_from_its_snapshot() -> None:
    doc = scxml(
        '<datamodel><data id="n" expr="0"/></datamodel>'
        '<state id="s"><onentry><foreach array="range(3000)" item="i"><raise event="step"/></foreach></onentry>'
        '<transition event="step" cond="n + 1 &lt; 3000"><assign location="n" expr="n + 1"/></transition>'
        '<transition event="step" target="done"/></state><final id="done"/>'
    )
    session = SessionHost(limits=Limits(turn_seconds=0.001)).start_session(doc)
    assert session.status == RUNNING and session.datamodel.variable("n") < 2999
    other = SessionHost()  # as after a crash: only the snapshot survives
    state = decode_state(encode_state(session.to_state()))
    copy = Session.from_state(other, doc, session.id, state)
    other.sessions[copy.id] = copy
    copy.resume()
    await settle(copy)
    assert copy.status == FINISHED and copy.datamodel.variable("n") == 2999


async def test_an_endless_macrostep_still_fails_across_turns() -> None:
    doc = scxml('<state id="s"><onentry><raise event="e"/></onentry>'
                '<transition event="e"><raise event="e"/></transition></state>')
    host = SessionHost(limits=Limits(max_microsteps=20_000, turn_seconds=0.001))
    session = host.start_session(doc)
    assert session.status == RUNNING  # cut into turns, not run in one go
    await settle(session)
    assert session.status == FAILED and "more than 20000 steps in one macrostep" in session.error


async def test_a_yielded_session_snapshot_holds_the_rest_of_its_queue() -> None:
    host = SessionHost(limits=Limits(macrosteps_per_turn=5, turn_seconds=0.2))
    session = host.start_session(TICKS)
    state = decode_state(encode_state(session.to_state()))
    other = SessionHost()
    copy = Session.from_state(other, TICKS, session.id, state)
    other.sessions[copy.id] = copy
    copy.resume()
    await settle(copy)
    assert copy.datamodel.variable("seen") == list(range(12))


# ---------------------------------------------------------------- foreach
def counting(array: str, then: str = '<transition event="error.execution" target="pass"/>') -> Document:
    return scxml(
        '<datamodel><data id="count" expr="0"/><data id="errors" expr="[]"/></datamodel>'
        f'<state id="s"><onentry><foreach array="{array}" item="x">'
        '<assign location="count" expr="count + 1"/></foreach></onentry>'
        '<transition event="error.execution"><assign location="errors" expr="errors + [_event.data.message]"/>'
        f'</transition>{then}</state><final id="pass"/>'
    )


async def test_a_foreach_within_the_cap_runs() -> None:
    session = SessionHost(limits=Limits(max_foreach_items=100)).start_session(counting("range(100)"))
    assert session.status == RUNNING
    assert session.datamodel.variable("count") == 100 and session.datamodel.variable("errors") == []


@pytest.mark.parametrize("array, size", [
    ("range(2_000_000)", "2000000"),
    ("(x for x in range(10**12))", "more than 100"),
    ("range(10**30)", "more than 100"),
])
async def test_a_foreach_over_the_cap_is_refused_before_it_runs(array: str, size: str) -> None:
    session = SessionHost(limits=Limits(max_foreach_items=100)).start_session(counting(array, ""))
    assert session.status == RUNNING and session.datamodel.variable("count") == 0
    [message] = session.datamodel.variable("errors")
    assert f"foreach over {size} items" in message and "max_foreach_items" in message, message


async def test_nested_foreach_loops_share_the_budget_of_their_macrostep() -> None:
    doc = scxml(
        '<datamodel><data id="count" expr="0"/><data id="errors" expr="[]"/></datamodel>'
        '<state id="s"><onentry><foreach array="range(20)" item="x"><foreach array="range(20)" item="y">'
        '<assign location="count" expr="count + 1"/></foreach></foreach></onentry>'
        '<transition event="again"><foreach array="range(60)" item="x">'
        '<assign location="count" expr="count + 1"/></foreach></transition>'
        '<transition event="error.execution"><assign location="errors" expr="errors + [_event.data.message]"/>'
        "</transition></state>"
    )
    session = SessionHost(limits=Limits(max_foreach_items=100)).start_session(doc)
    # 20 for the outer loop, then 20 per inner loop: the fifth inner loop would make 120.
    assert session.datamodel.variable("count") == 4 * 20
    assert len(session.datamodel.variable("errors")) == 1
    session.send("again")
    session.send("again")  # a new macrostep each time: 60 + 60 > 100 is fine
    assert session.datamodel.variable("count") == 80 + 120 and len(session.datamodel.variable("errors")) == 1


async def test_a_session_that_goes_over_the_foreach_cap_again_fails() -> None:
    doc = scxml(
        '<datamodel><data id="count" expr="0"/></datamodel>'
        '<state id="s"><onentry><foreach array="range(1000)" item="x">'
        '<assign location="count" expr="count + 1"/></foreach></onentry>'
        '<transition event="error.execution" target="s2"/></state>'
        '<state id="s2"><onentry><foreach array="range(1000)" item="x">'
        '<assign location="count" expr="count + 1"/></foreach></onentry>'
        '<transition event="error.execution" target="pass"/></state><final id="pass"/>'
    )
    session = SessionHost(limits=Limits(max_foreach_items=100)).start_session(doc)
    assert session.status == FAILED and session.datamodel.variable("count") == 0
    assert "max_foreach_items" in session.error and "again within 1 s" in session.error, session.error


async def test_after_a_quiet_second_a_refusal_is_only_an_error_again(monkeypatch) -> None:
    monkeypatch.setattr(session_module, "NOTICE_SECONDS", 0.05)
    doc = scxml(
        '<datamodel><data id="errors" expr="[]"/></datamodel>'
        '<state id="s"><transition event="big"><foreach array="range(1000)" item="x"/></transition>'
        '<transition event="error.execution"><assign location="errors" expr="errors + [_event.data.message]"/>'
        "</transition></state>"
    )
    session = SessionHost(limits=Limits(max_foreach_items=100)).start_session(doc)
    session.send("big")
    await asyncio.sleep(0.1)
    session.send("big")
    assert session.status == RUNNING and len(session.datamodel.variable("errors")) == 2
    session.send("big")
    assert session.status == FAILED and "max_foreach_items" in session.error


# ---------------------------------------------------------------- send rate
async def test_sends_over_the_rate_are_refused_with_an_error() -> None:
    doc = scxml(
        '<datamodel><data id="seen" expr="[]"/><data id="errors" expr="[]"/></datamodel>'
        '<state id="s"><onentry><foreach array="range(11)" item="i">'
        '<send event="tick"><param name="i" expr="i"/></send></foreach></onentry>'
        "<transition event=\"tick\"><assign location=\"seen\" expr=\"seen + [_event.data['i']]\"/></transition>"
        '<transition event="error.execution"><assign location="errors" expr="errors + [_event.data.message]"/>'
        "</transition></state>"
    )
    session = SessionHost(limits=Limits(max_sends_per_second=10)).start_session(doc)
    await settle(session)
    assert session.status == RUNNING and session.datamodel.variable("seen") == list(range(10))
    [message] = session.datamodel.variable("errors")
    assert "'tick' not sent" in message and "max_sends_per_second" in message, message


@pytest.mark.parametrize("target", ["self", "other"])
async def test_a_self_send_loop_is_stopped_by_the_rate(target: str) -> None:
    host = SessionHost(limits=Limits(max_sends_per_second=10))
    sink = host.start_session(scxml('<state id="idle"/>'))
    doc = LOOP if target == "self" else scxml(
        '<datamodel><data id="n" expr="0"/><data id="errors" expr="[]"/><data id="to"/></datamodel>'
        '<state id="s"><onentry><raise event="go"/></onentry>'
        '<transition event="go" cond="n &lt; 5000"><assign location="n" expr="n + 1"/>'
        '<send event="x" targetexpr="to"/><raise event="go"/></transition>'
        '<transition event="error.execution"><assign location="errors" expr="errors + [_event.data.message]"/>'
        "</transition></state>"
    )
    data = {"log": [], "me": "a", "rounds": 5000} if target == "self" else {"to": "#_scxml_" + sink.id}
    session = host.start_session(doc, data=data)
    await settle(session, sink)
    assert session.status == RUNNING
    assert session.datamodel.variable("n") <= 11  # was 5000: every round sent its event
    [message] = session.datamodel.variable("errors")
    assert "max_sends_per_second" in message


async def test_a_session_that_keeps_sending_after_the_error_fails() -> None:
    stubborn = scxml(
        '<datamodel><data id="n" expr="0"/></datamodel>'
        '<state id="s"><onentry><send event="ping"/></onentry>'
        '<transition event="ping"><assign location="n" expr="n + 1"/><send event="ping"/></transition>'
        '<transition event="error.execution"><send event="ping"/></transition></state>'
    )
    host = SessionHost(limits=Limits(max_sends_per_second=10))
    ended: list = []
    host.on_session_end.append(ended.append)
    session = host.start_session(stubborn)
    await settle(session)
    assert session.status == FAILED and ended == [session]
    assert "max_sends_per_second" in session.error and "again within 1 s" in session.error, session.error


async def test_the_send_window_reopens(monkeypatch) -> None:
    monkeypatch.setattr(session_module, "SEND_WINDOW_SECONDS", 0.05)
    monkeypatch.setattr(session_module, "NOTICE_SECONDS", 0.05)
    doc = scxml(
        '<datamodel><data id="n" expr="0"/><data id="errors" expr="[]"/></datamodel>'
        '<state id="s"><transition event="burst"><foreach array="range(10)" item="i"><send event="tick"/>'
        "</foreach></transition>"
        '<transition event="tick"><assign location="n" expr="n + 1"/></transition>'
        '<transition event="error.execution"><assign location="errors" expr="errors + [_event.data.message]"/>'
        "</transition></state>"
    )
    session = SessionHost(limits=Limits(max_sends_per_second=10)).start_session(doc)
    session.send("burst")
    await settle(session)
    await asyncio.sleep(0.1)
    session.send("burst")
    await settle(session)
    assert session.status == RUNNING
    assert session.datamodel.variable("n") == 20 and session.datamodel.variable("errors") == []


def test_limits_must_be_positive() -> None:
    for bad in ({"max_foreach_items": 0}, {"macrosteps_per_turn": -1}, {"turn_seconds": float("nan")},
                {"max_sends_per_second": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Limits(**bad)
