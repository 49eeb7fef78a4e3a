"""Flows talk to the platform through <send type="platform"> and get its answers as events."""

from __future__ import annotations

import asyncio

from engine.platform import PLATFORM_PROCESSOR, Simulator, register
from engine.scxml import DEFAULT_REGISTRY, Document, Registry, Session, SessionHost, compile_document
from engine.scxml.clock import ScaledClock
from tests.platform.helpers import config

NS = 'xmlns="http://www.w3.org/2005/07/scxml"'


def registry(platform: Simulator | None = None) -> Registry:
    reg = DEFAULT_REGISTRY.copy()
    register(reg, platform)
    return reg


def flow(body: str, reg: Registry) -> Document:
    return compile_document(f'<scxml {NS} datamodel="python">{body}</scxml>', registry=reg, strict=True)


async def run(doc: Document, host: SessionHost, timeout: float = 5.0) -> Session:
    """Start a session and wait (event driven) until it ends."""
    ended: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
    host.on_session_end.append(lambda s: ended.done() or ended.set_result(s))
    host.start_session(doc)
    return await asyncio.wait_for(ended, timeout)


def platform_host(**settings) -> tuple[SessionHost, Simulator, Registry]:
    """A host whose sends reach a simulator: built as the engine builds them, platform first, the
    host's platform processor attaching the host to it."""
    clock = ScaledClock(1000)
    sim = Simulator(config(**settings), clock)
    reg = registry(sim)
    return SessionHost(registry=reg, clock=clock), sim, reg


DIAL_UNTIL_ANSWER = """
<datamodel><data id="attempt" expr="1"/><data id="results" expr="[]"/><data id="rid"/></datamodel>
<state id="dialing">
  <onentry>
    <send type="platform" event="dial" idlocation="rid">
      <param name="number" expr="'+15550010000'"/><param name="attempt" expr="attempt"/>
    </send>
  </onentry>
  <transition event="dial.result" cond="_event.data.request_id != rid" target="fail"/>
  <transition event="dial.result" cond="_event.data.result == 'answer'" target="pass">
    <script>results.append((_event.data.attempt, _event.data.result, _event.data.code))</script>
  </transition>
  <transition event="dial.result" cond="attempt &lt; 3" target="dialing">
    <script>results.append((_event.data.attempt, _event.data.result, _event.data.code)); attempt += 1</script>
  </transition>
  <transition event="dial.result" target="fail"/>
</state>
<final id="pass"/><final id="fail"/>
"""


async def test_a_flow_dials_through_the_platform_and_retries_on_busy() -> None:
    # The default example rule for +1555001: busy, then answer.
    host, sim, reg = platform_host(dial_rules=[{"pattern": r"^\+1555001", "sequence": ["busy", "answer"]}])
    session = await run(flow(DIAL_UNTIL_ANSWER, reg), host)
    assert session.final_state == "pass"
    assert session.datamodel.variable("results") == [(1, "busy", 1), (2, "answer", 0)]
    sim.close()
    await host.close()


CALLBACK = """
<datamodel><data id="vixn"/><data id="agent"/><data id="target"/><data id="handled"/></datamodel>
<state id="queue">
  <onentry>
    <send type="urn:callback-engine:platform" event="vixn.create"><param name="queue" expr="'Q'"/></send>
  </onentry>
  <transition event="vixn.created" target="find"><assign location="vixn" expr="_event.data.vixn_id"/></transition>
</state>
<state id="find">
  <onentry><send type="platform" event="target.find"><param name="vixn_id" expr="vixn"/></send></onentry>
  <transition event="target.found" target="route">
    <assign location="agent" expr="_event.data.agent_id"/><assign location="target" expr="_event.data.target.dn"/>
  </transition>
</state>
<state id="route">
  <onentry><send type="platform" event="route"><param name="agent_id" expr="agent"/></send></onentry>
  <transition event="call.ended" target="pass">
    <assign location="handled" expr="_event.data.handle_seconds"/>
  </transition>
</state>
<final id="pass"/>
"""


async def test_a_flow_queues_finds_an_agent_and_routes() -> None:
    host, sim, reg = platform_host()
    session = await run(flow(CALLBACK, reg), host)
    assert session.final_state == "pass"
    assert session.datamodel.variable("agent") == "Q.agent1" and session.datamodel.variable("target") == "7001"
    assert session.datamodel.variable("handled") == 100.0
    assert sim.queue_stats("Q").avg_handle_seconds == 100.0
    sim.close()
    await host.close()


async def test_missing_event_name_is_an_execution_error_and_no_platform_a_communication_error() -> None:
    reg = registry()
    host = SessionHost(registry=reg, clock=ScaledClock(1000))
    doc = flow("""
<state id="s">
  <onentry><send type="platform" eventexpr="None"/></onentry>
  <transition event="error.execution" target="t"/>
</state>
<state id="t">
  <onentry><send type="platform" event="dial"><param name="number" expr="'1'"/></send></onentry>
  <transition event="error.communication" target="pass"/>
</state>
<final id="pass"/>""", reg)
    session = await run(doc, host)
    assert session.final_state == "pass"
    await host.close()


async def test_platform_errors_come_back_as_events_and_no_ioprocessors_entry() -> None:
    host, sim, reg = platform_host()
    doc = flow("""
<datamodel><data id="reason"/><data id="procs"/></datamodel>
<state id="s">
  <onentry>
    <assign location="procs" expr="sorted(_ioprocessors)"/>
    <send type="platform" event="vixn.create"><param name="queue" expr="'Nope'"/></send>
  </onentry>
  <transition event="platform.error" target="pass"><assign location="reason" expr="_event.data.reason"/></transition>
</state>
<final id="pass"/>""", reg)
    session = await run(doc, host)
    assert session.datamodel.variable("reason") == "unknown queue 'Nope'"
    procs = session.datamodel.variable("procs")
    assert "platform" not in procs and PLATFORM_PROCESSOR not in procs
    sim.close()
    await host.close()


async def test_the_processor_emits_an_effect_that_the_host_performs() -> None:
    """What a persisting host sees: one 'platform' effect per send, with the request and its data."""
    reg = registry()
    effects: list[tuple[str, dict]] = []

    class RecordingHost(SessionHost):
        def emit(self, session, kind, payload, *, durable=True):  # type: ignore[override]
            effects.append((kind, payload))
            assert durable  # no platform behind it: nothing says it would not outlive the process

    host = RecordingHost(registry=reg, clock=ScaledClock(1000))
    doc = flow('<state id="s"><onentry><send type="platform" event="treatment.play" id="t1">'
               '<param name="name" expr="\'music\'"/></send></onentry></state>', reg)
    host.start_session(doc)
    assert effects == [("platform", {"request": "treatment.play", "data": {"name": "music"}, "sendid": "t1"})]
    await host.close()
