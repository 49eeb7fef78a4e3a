"""Idle sessions in the same configuration hold one shared frozen copy of it (issue 15: a set of
its own cost each waiting session 216 bytes); a session that moves on gets a set of its own
again, and the others keep theirs unchanged."""

from __future__ import annotations

from engine.scxml import FAILED, Session, SessionHost
from tests.scxml.documents import scxml
from tests.support.eventually import eventually

DOC = scxml(
    '<parallel id="p"><transition event="boom" target="fail"/>'
    '<state id="a" initial="a1"><state id="a1"><transition event="go" target="a2"/></state>'
    '<state id="a2"/></state><state id="b"/></parallel>'
    '<state id="fail"><onentry><raise event="again"/></onentry><transition event="again" target="fail"/></state>'
)


async def test_sessions_waiting_in_one_configuration_share_it_and_move_on_alone() -> None:
    host = SessionHost()
    sessions = [host.start_session(DOC) for _ in range(3)]
    first = sessions[0].configuration
    assert isinstance(first, frozenset) and all(s.configuration is first for s in sessions)
    assert {s.id for s in first} == {"p", "a", "a1", "b"}
    sessions[0].send("go")
    assert {s.id for s in sessions[0].configuration} == {"p", "a", "a2", "b"}
    assert all(s.configuration is first for s in sessions[1:])  # untouched by the other's step
    assert {s.id for s in first} == {"p", "a", "a1", "b"}
    sessions[1].send("go")
    assert sessions[1].configuration is sessions[0].configuration  # the same configuration again
    # The shared atomic states stay in document order and right for the event.
    sessions[2].send("nothing")
    sessions[2].send("go")
    assert {s.id for s in sessions[2].configuration} == {"p", "a", "a2", "b"}


async def test_a_restored_session_shares_and_still_runs() -> None:
    host = SessionHost()
    session = host.start_session(DOC)
    state = session.to_state()
    other = SessionHost()
    copy = Session.from_state(other, DOC, "copy", state)
    assert copy.configuration is session.configuration
    other.sessions["copy"] = copy
    copy.send("go")
    assert {s.id for s in copy.configuration} == {"p", "a", "a2", "b"}
    assert {s.id for s in session.configuration} == {"p", "a", "a1", "b"}


async def test_a_session_that_ends_or_fails_leaves_the_shared_copy_alone() -> None:
    host = SessionHost()
    waiting = host.start_session(DOC)
    shared = waiting.configuration
    cancelled, failing = host.start_session(DOC), host.start_session(DOC)
    cancelled.cancel()
    failing.send("boom")  # an endless loop of raised events: the session fails
    await eventually(lambda: failing.status, lambda status: status == FAILED, expected="the looping session failed")
    assert not cancelled.is_running
    assert failing.active_state_ids() == ["fail"]
    assert {s.id for s in shared} == {"p", "a", "a1", "b"} and waiting.configuration is shared
    waiting.send("go")
    assert waiting.active_state_ids() == ["p", "a", "a2", "b"]
