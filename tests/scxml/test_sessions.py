"""Sessions: shared compiled documents, isolation, timers, cross-session events, cancel."""

from __future__ import annotations

import asyncio
import time

from engine.scxml import CANCELLED, FINISHED, SessionHost
from tests.scxml.documents import scxml

TOGGLE = scxml(
    '<datamodel><data id="items" expr="[]"/></datamodel>'
    '<state id="off"><transition event="flip" target="on"/></state>'
    '<state id="on"><onentry><script>items.append(1)</script></onentry>'
    '<transition event="flip" target="off"/></state>'
)


async def test_sessions_share_the_document_but_not_their_data() -> None:
    host = SessionHost()
    a, b = host.start_session(TOGGLE), host.start_session(TOGGLE)
    assert a.doc is b.doc
    a.send("flip")
    assert a.active_state_ids() == ["on"] and b.active_state_ids() == ["off"]
    assert a.datamodel.variable("items") == [1] and b.datamodel.variable("items") == []


async def test_delayed_send_does_not_block_and_fires_at_its_due_time() -> None:
    doc = scxml(
        '<state id="wait"><onentry><send event="tick" delay="200ms" id="t1"/></onentry>'
        '<transition event="tick" target="done"/></state><final id="done"/>'
    )
    host = SessionHost()
    before = time.time()
    session = host.start_session(doc)
    assert time.time() - before < 0.1
    [pending] = session.pending_sends()
    assert pending.sendid == "t1" and 0.15 < pending.due - before < 0.3
    await asyncio.sleep(0.35)
    assert session.status == FINISHED and session.final_state == "done"


async def test_cancel_stops_a_delayed_send() -> None:
    doc = scxml(
        '<state id="s"><onentry><send event="late" delay="100ms" id="x"/><cancel sendid="x"/>'
        '<send event="fine" delay="200ms"/></onentry>'
        '<transition event="late" target="bad"/><transition event="fine" target="good"/></state>'
        '<final id="bad"/><final id="good"/>'
    )
    session = SessionHost().start_session(doc)
    await asyncio.sleep(0.3)
    assert session.final_state == "good"


async def test_events_between_sessions_are_queued_not_run_inside_the_sender() -> None:
    receiver_doc = scxml('<state id="idle"><transition event="ping" target="got"/></state><final id="got"/>')
    host = SessionHost()
    receiver = host.start_session(receiver_doc)
    sender_doc = scxml(
        f'<state id="s"><onentry><send event="ping" target="#_scxml_{receiver.id}"/></onentry></state>'
    )
    host.start_session(sender_doc)
    assert receiver.is_running  # not yet: delivery waits for the next loop turn
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert receiver.final_state == "got"


async def test_send_to_an_unknown_session_raises_error_communication() -> None:
    doc = scxml(
        '<state id="s"><onentry><send event="x" target="#_scxml_nobody"/></onentry>'
        '<transition event="error.communication" target="ok"/></state><final id="ok"/>'
    )
    assert SessionHost().start_session(doc).final_state == "ok"


async def test_cancelling_a_session_runs_its_exit_handlers() -> None:
    doc = scxml(
        '<datamodel><data id="log" expr="[]"/></datamodel>'
        '<state id="outer"><onexit><script>log.append("outer")</script></onexit>'
        '<state id="inner"><onexit><script>log.append("inner")</script></onexit></state></state>'
    )
    host = SessionHost()
    ended = []
    host.on_session_end.append(ended.append)
    session = host.start_session(doc)
    session.cancel()
    assert session.status == CANCELLED and session.datamodel.variable("log") == ["inner", "outer"]
    assert ended == [session] and session.id not in host.sessions


async def test_start_data_replaces_initial_values() -> None:
    doc = scxml('<datamodel><data id="n" expr="1"/><data id="m" expr="n + 1"/></datamodel><state id="s"/>')
    session = SessionHost().create_session(doc, data={"n": 41}).start()
    assert session.datamodel.variable("n") == 41 and session.datamodel.variable("m") == 42


async def test_ioprocessors_are_visible_to_the_flow() -> None:
    doc = scxml(
        '<datamodel><data id="loc"/></datamodel>'
        '<state id="s"><onentry><assign location="loc" expr="_ioprocessors[\'scxml\'].location"/></onentry></state>'
    )
    session = SessionHost().start_session(doc)
    assert session.datamodel.variable("loc") == "#_scxml_" + session.id


async def test_null_datamodel_supports_in_only() -> None:
    doc = scxml(
        '<parallel id="p"><state id="a"><transition cond="In(\'b\')" target="yes"/></state>'
        '<state id="b"/></parallel><final id="yes"/>',
        extra="",
    )
    assert SessionHost().start_session(doc).final_state == "yes"
    from engine.scxml import compile_document
    from tests.scxml.documents import NS

    null_doc = compile_document(
        f'<scxml {NS} datamodel="null"><parallel id="p"><state id="a">'
        f'<transition cond="In(\'b\')" target="yes"/></state><state id="b"/></parallel>'
        f'<final id="yes"/></scxml>'
    )
    assert SessionHost().start_session(null_doc).final_state == "yes"


async def test_many_waiting_sessions_cost_nothing_until_due() -> None:
    doc = scxml('<state id="s"><onentry><send event="t" delay="60s"/></onentry></state>')
    host = SessionHost()
    sessions = [host.start_session(doc) for _ in range(2000)]
    cpu = time.process_time()
    await asyncio.sleep(0.5)
    assert time.process_time() - cpu < 0.2
    assert all(s.is_running and len(s.pending_sends()) == 1 for s in sessions)
    await host.close()


async def test_an_ended_session_is_freed_without_the_garbage_collector() -> None:
    import gc
    import weakref

    parent_doc = scxml(
        '<datamodel><data id="x" expr="[1, {}]"/></datamodel>'
        '<state id="s"><onentry><send event="later" delay="60s"/></onentry>'
        '<invoke id="kid"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python">'
        '<state id="k"/></scxml></content></invoke>'
        '<transition event="stop" target="end"/></state><final id="end"/>'
    )
    host = SessionHost()
    gc.collect()
    gc.disable()
    try:
        session = host.start_session(parent_doc)
        [child] = [s for s in host.sessions.values() if s is not session]
        refs = [weakref.ref(session), weakref.ref(child)]
        data = session.datamodel
        assert data.variable("In")("s") and data.variable("_ioprocessors")["scxml"]["location"]
        session.send("stop")
        del session, child, data
        assert [r() for r in refs] == [None, None]  # no reference cycle kept them
    finally:
        gc.enable()
