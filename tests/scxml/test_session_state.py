"""A session's state as a value: ``to_state`` / ``from_state`` and the JSON of ``snapshot.py``."""

from __future__ import annotations

import asyncio
import json
import math

from engine.scxml import FINISHED, RUNNING, Event, Session, SessionHost
from engine.scxml.session_state import SessionState
from engine.scxml.snapshot import decode_state, decode_value, encode_state, encode_value
from engine.storage.store import dumps
from tests.scxml.documents import scxml
from tests.support.eventually import eventually

# History recorded, a delayed send pending, a child invoked, a function only a script can make.
DOC = scxml(
    '<datamodel><data id="got" expr="[]"/><data id="pair" expr="(1, {2})"/></datamodel>'
    '<script>def double(x):\n    return 2 * x\n</script>'
    '<state id="work" initial="w1"><history id="h"><transition target="w1"/></history>'
    '<state id="w1"><transition event="next" target="w2"/></state><state id="w2"/>'
    '<transition event="pause" target="paused"/></state>'
    '<state id="paused">'
    '<onentry><send event="late" delay="30s" id="late1"/></onentry>'
    '<invoke id="kid"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python">'
    '<state id="k"><transition event="stop" target="kf"/></state><final id="kf"/></scxml></content></invoke>'
    '<transition event="resume" target="h"/>'
    "<transition event=\"tell\"><assign location=\"got\" expr=\"got + [double(_event.data['n'])]\"/>"
    '</transition>'
    '<transition event="done.invoke.kid" target="end"/>'
    '</state><final id="end"/>',
    initial="work",
)


def through_json(state: SessionState) -> SessionState:
    return decode_state(json.loads(json.dumps(encode_state(state))))


def paused_session(host: SessionHost) -> Session:
    session = host.start_session(DOC)
    session.send("next")
    session.send("pause")
    return session


async def test_a_state_survives_json_and_makes_the_same_session_again() -> None:
    host = SessionHost()
    session = paused_session(host)
    session.queue(Event("tell", {"n": 4}))
    state = session.to_state()
    assert state.configuration and state.history == {"h": ["w2"]}
    assert [r.sendid for r in state.pending] == ["late1"] and state.pending[0].due > 0
    assert [(i.invokeid, i.state, i.index) for i in state.invocations] == [("kid", "paused", 0)]
    assert [e.name for e in state.external] == ["tell"]
    assert callable(state.data["double"]) and state.data["pair"] == (1, {2})

    copy_state = through_json(state)
    assert copy_state.lost == ["double"]  # a function cannot be stored; the script makes it again
    assert copy_state.pending[0].due == state.pending[0].due

    other = SessionHost()
    child_id = state.invocations[0].child
    child = Session.from_state(other, host.sessions[child_id].doc, child_id,
                               through_json(host.sessions[child_id].to_state()))
    copy = Session.from_state(other, DOC, session.id, copy_state)
    child.parent = copy
    other.sessions.update({copy.id: copy, child.id: child})
    copy.link_invocations(copy_state.invocations, other.sessions)
    assert copy.active_state_ids() == session.active_state_ids()
    again = copy.to_state()
    assert sorted(again.configuration) == sorted(state.configuration)
    assert again.history == state.history and again.sendseq == state.sendseq
    assert [i.child for i in again.invocations] == [child_id]
    assert again.pending == copy_state.pending  # held before resume arms them (a snapshot taken then keeps them)

    copy.resume()
    assert [r.sendid for r in copy.pending_sends()] == ["late1"]
    await eventually(lambda: not copy.has_queued_events, timeout=5, expected="the queued event taken")
    assert copy.datamodel.variable("got") == [8]  # the queued event, with the recovered function
    copy.send("resume")
    assert copy.active_state_ids() == ["work", "w2"]  # the restored history
    assert child.status == "cancelled"  # the linked invocation was cancelled with its state
    await host.close()
    await other.close()


async def test_a_rebuilt_session_holds_its_delayed_sends_until_resume_arms_each_once() -> None:
    """A host may store a rebuilt session before it runs (the manager's writer, between a restore
    and ``run_restored``): that snapshot keeps its delayed sends, and ``resume`` arms each once."""
    doc = scxml('<datamodel><data id="n" expr="0"/></datamodel><state id="s">'
                '<onentry><send event="t" delay="50ms"/><send event="t" delay="60ms"/></onentry>'
                '<transition event="t"><assign location="n" expr="n + 1"/></transition></state>')
    host = SessionHost()
    session = host.start_session(doc)
    state = through_json(session.to_state())
    await host.close()
    other = SessionHost()
    copy = Session.from_state(other, doc, session.id, state)
    other.sessions[copy.id] = copy
    assert [r.sendid for r in through_json(copy.to_state()).pending] == [r.sendid for r in state.pending]
    idle = Session.from_state(other, doc, session.id + "x", state)
    idle.cancel_timers()  # never resumed: nothing armed to cancel
    assert idle.pending_sends() == []
    copy.resume()
    copy.resume()  # a second call changes nothing: each send fires once
    await eventually(lambda: copy.datamodel.variable("n") == 2, timeout=2, expected="both sends fired")
    await asyncio.sleep(0.1)
    assert copy.datamodel.variable("n") == 2 and copy.pending_sends() == []
    await other.close()


def test_a_bare_state_keeps_only_how_the_session_ended() -> None:
    host = SessionHost()
    session = paused_session(host)
    session.fail("its state cannot be stored: test")
    bare = through_json(session.to_bare_state())
    assert bare.status == "failed" and bare.error == "its state cannot be stored: test"
    assert bare.final_ids == ["paused"]  # what was active when it failed
    assert (bare.configuration, bare.data, bare.pending, bare.invocations, bare.external) == ([], {}, [], [], [])


def test_a_finished_session_round_trips_its_done_data() -> None:
    doc = scxml('<state id="s"><transition event="e" target="f"/></state>'
                '<final id="f"><donedata><param name="x" expr="41 + 1"/></donedata></final>')
    session = SessionHost().start_session(doc)
    session.send("e")
    state = through_json(session.to_state())
    assert state.status == FINISHED and state.done_data == {"x": 42} and state.final_ids == ["f"]


def test_an_unknown_snapshot_format_is_refused() -> None:
    encoded = encode_state(SessionState(status=RUNNING))
    encoded["format"] = 99
    try:
        decode_state(encoded)
    except ValueError as e:
        assert "99" in str(e)
    else:
        raise AssertionError("format 99 was read")


def test_non_finite_floats_survive_a_snapshot_as_tagged_values() -> None:
    """JSON has no NaN or infinity; a snapshot tags them so a restored session has them back."""
    values = [float("nan"), float("inf"), float("-inf"), -0.0, 1.5, {"x": [float("inf")]}]
    encoded = encode_value(values)
    text = dumps(encoded)
    assert "NaN" not in text and "Infinity" not in text and "null" not in text
    back = decode_value(json.loads(text))
    assert math.isnan(back[0]) and back[1] == math.inf and back[2] == -math.inf
    assert math.copysign(1, back[3]) == -1 and back[4] == 1.5 and back[5] == {"x": [math.inf]}


def test_to_state_puts_each_part_of_the_session_in_its_own_field() -> None:
    """``to_state`` builds the value positionally (it is taken after every stored macrostep): each
    field gets its own part, whatever the order of the fields."""
    host = SessionHost()
    session = paused_session(host)
    session._internal = [Event("raised", type="internal")]
    session._late_done = {"late_b", "late_a"}
    session.final_ids, session.done_data, session.error = ["f"], {"d": 1}, "an error"
    session.cancel_requested = True
    state = session.to_state()
    assert (state.status, state.lost, state.sendseq) == (RUNNING, [], session._sendseq)
    assert [e.name for e in state.internal] == ["raised"] and state.external == []
    assert state.late_done == ["late_a", "late_b"] and state.final_ids == ["f"]
    assert (state.done_data, state.error, state.cancel_requested) == ({"d": 1}, "an error", True)
    assert (state.parent, state.invokeid) == (None, None) and state.data["got"] == []
    child = host.sessions[state.invocations[0].child].to_state()
    assert (child.parent, child.invokeid, child.configuration) == (session.id, "kid", ["k"])
