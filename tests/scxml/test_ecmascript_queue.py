"""Issue 11 item 4: ``_genesys.queue`` in ecmascript flows. Its readers answer from the platform's
queue figures (pushed into the sandbox, which cannot call out); its actions record a request that
the session sends after the evaluation as ``<send type="platform">`` would, and the platform's
answer comes back as its usual event. A bad argument is ``error.execution`` and sends nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runtime import Runtime
from engine.scxml import ExecutionError, SessionHost, compile_document, standard_registry
from engine.scxml.ecmascript import EcmaScriptDataModel
from engine.scxml.ecmascript.ors import OrsFacilities, OrsSources
from engine.settings import Settings
from tests.support.eventually import eventually

HEAD = '<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="ask">'

# Reads the figures, queues an interaction, reserves an agent for it; then tries bad arguments.
QUEUE_FLOW = HEAD + """
<datamodel>
  <data id="seen" expr="[]"/><data id="rid" expr="''"/><data id="vixn" expr="''"/>
  <data id="target" expr="null"/><data id="errors" expr="[]"/><data id="answers" expr="[]"/>
</datamodel>
<state id="ask">
  <onentry>
    <script>
      var q = _genesys.queue;
      seen.push([q.ewt('Callback_VQ'), q.waiting('Callback_VQ'), q.readyAgents('Callback_VQ')]);
      rid = q.createInteraction('Callback_VQ', 2);
    </script>
  </onentry>
  <transition event="vixn.created" cond="_event.data.request_id === rid" target="reserve">
    <assign location="vixn" expr="_event.data.vixn_id"/>
  </transition>
  <transition event="*" target="fail"/>
</state>
<state id="reserve">
  <onentry>
    <script>seen.push([_genesys.queue.ewt('Callback_VQ'), _genesys.queue.waiting('Callback_VQ')]);</script>
    <assign location="rid" expr="_genesys.queue.reserveTarget(vixn)"/>
  </onentry>
  <transition event="target.found" cond="_event.data.request_id === rid" target="reserved">
    <assign location="target" expr="_event.data.target"/>
    <script>seen.push([_genesys.queue.readyAgents('Callback_VQ')]);</script>
  </transition>
  <transition event="*" target="fail"/>
</state>
<state id="reserved">
  <transition event="bad" target="bad_args"/>
</state>
<state id="bad_args" initial="b1">
  <transition event="error.execution">
    <script>errors.push(_event.data.message)</script>
  </transition>
  <state id="b1"><onentry><script>_genesys.queue.ewt(42)</script></onentry>
    <transition cond="errors.length === 1" target="b2"/></state>
  <state id="b2"><onentry><assign location="rid" expr="_genesys.queue.createInteraction('No_VQ')"/></onentry>
    <transition cond="errors.length === 2" target="b3"/></state>
  <state id="b3"><onentry><assign location="rid" expr="_genesys.queue.reserveTarget(7)"/></onentry>
    <transition cond="errors.length === 3" target="b4"/></state>
  <state id="b4"><onentry><assign location="rid" expr="_genesys.queue.createInteraction('Callback_VQ', 1.5)"/>
    </onentry><transition cond="errors.length === 4" target="b5"/></state>
  <state id="b5"><onentry><assign location="rid" expr="_genesys.queue.releaseTarget('')"/></onentry>
    <transition cond="errors.length === 5" target="checked"/></state>
  <state id="checked">
    <transition event="platform.error" target="fail"/>
    <transition event="done"><script>answers.push('done')</script></transition>
  </state>
</state>
<final id="fail"/>
</scxml>"""


def engine_settings(tmp_path: Path, **kw) -> Settings:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "queue.scxml").write_text(QUEUE_FLOW)
    return Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data", flows_dir=flows,
                         flow_watch_interval=0, **kw)


@pytest.mark.parametrize("persistence", [False, True])
async def test_a_flow_reads_ewt_and_reserves_a_target_through_the_platform(tmp_path: Path,
                                                                           persistence: bool) -> None:
    runtime = await Runtime.build(engine_settings(tmp_path, persistence=persistence))
    await runtime.start()
    try:
        sim = runtime.simulator
        session = runtime.manager.start_flow("queue")
        await eventually(lambda: session.active_state_ids(), timeout=10, expected="['reserved']",
                         until=lambda ids: ids == ["reserved"])
        got = session.variables
        # The default simulator: Callback_VQ has 3 agents and 180 s handle time until it has history,
        # so EWT for a new arrival is 180 x position / 3; -1 would mean no agent is staffed.
        assert got["seen"] == [[60, 0, 3], [120, 1], [2]]  # figures as they were when each ran
        assert got["vixn"].startswith("vx-") and got["rid"].startswith("q-")
        assert got["target"]["vq"] == "Callback_VQ" and got["target"]["agent"]
        assert sim.queue_stats("Callback_VQ").agents_free == 2  # the platform did reserve one

        session.send("bad")
        await eventually(lambda: session.active_state_ids(), timeout=10, expected="in 'checked'",
                         until=lambda ids: ids == ["bad_args", "checked"])
        errors = session.variables["errors"]
        assert len(errors) == 5, errors
        assert "a virtual queue is named by a string" in errors[0]
        assert "no virtual queue No_VQ" in errors[1]
        assert "an interaction id must be a non-empty string" in errors[2]
        assert "a priority must be an integer" in errors[3]
        assert "an agent id must be a non-empty string" in errors[4]
        session.send("done")  # nothing was sent for the bad calls: no platform.error came back
        await eventually(lambda: session.variables["answers"], timeout=10, expected="['done']",
                         until=lambda a: a == ["done"])
        assert session.active_state_ids() == ["bad_args", "checked"]
        assert sim.queue_stats("Callback_VQ").waiting == 0 and sim.queue_stats("Callback_VQ").agents_free == 2
    finally:
        await runtime.close()


async def test_queue_requests_count_against_the_send_budget(tmp_path: Path) -> None:
    """They go out as <send> does, so ``max_sends_per_second`` bounds them too."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "burst.scxml").write_text(HEAD + """
<datamodel><data id="made" expr="0"/><data id="error" expr="''"/></datamodel>
<state id="ask">
  <onentry><script>for (var i = 0; i &lt; 3; i++) { _genesys.queue.createInteraction('Callback_VQ'); made++; }</script>
  </onentry>
  <transition event="error.execution" target="refused">
    <assign location="error" expr="_event.data.message"/>
  </transition>
</state>
<state id="refused"/>
</scxml>""")
    settings = Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data", flows_dir=flows,
                             flow_watch_interval=0, persistence=False, max_sends_per_second=2)
    runtime = await Runtime.build(settings)
    await runtime.start()
    try:
        session = runtime.manager.start_flow("burst")
        await eventually(lambda: session.active_state_ids(), timeout=10, expected="['refused']",
                         until=lambda ids: ids == ["refused"])
        assert "max_sends_per_second" in session.variables["error"]
        await eventually(lambda: runtime.simulator.queue_stats("Callback_VQ").waiting, timeout=10,
                         expected="2 interactions queued", until=lambda n: n == 2)
    finally:
        await runtime.close()


# ---------------------------------------------------------------------- the datamodel's seam alone
class Queues:
    """A platform's figures and the requests that reached it, through the kind's two seams."""

    def __init__(self) -> None:
        self.figures = {"VQ": {"ewt": 30.5, "waiting": 4, "ready": 1, "staffed": 2, "busy": 1}}
        self.text = json.dumps(self.figures)
        self.reads = 0
        self.sent: list[tuple[str, str, dict, str, int]] = []
        self.refuse = False

    def facts(self) -> str:
        self.reads += 1
        return self.text

    def send(self, session_id: str, request: str, data: dict, request_id: str, line: int) -> None:
        if self.refuse:
            raise ExecutionError(f"line {line}: refused")
        self.sent.append((session_id, request, data, request_id, line))


def start(body: str, queues: Queues, requests: bool = True):
    registry = standard_registry()
    facilities = OrsFacilities(OrsSources())
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(
        facilities=facilities, queue_facts=queues.facts, platform_requests=queues.send if requests else None))
    doc = compile_document(HEAD + body + "</scxml>", registry=registry)
    return SessionHost(registry=registry).start_session(doc)


def test_requests_go_out_once_in_order_with_the_ids_the_flow_got() -> None:
    queues = Queues()
    session = start("""
<datamodel><data id="ids" expr="[]"/><data id="ewt"/></datamodel>
<state id="ask">
  <onentry>
    <script>ids.push(_genesys.queue.createInteraction('VQ'), _genesys.queue.reserveTarget('vx-1'))</script>
    <script>ids.push(_genesys.queue.releaseTarget('agent-7'), _genesys.queue.cancelInteraction('vx-1'))</script>
    <assign location="ewt" expr="_genesys.queue.ewt('VQ')"/>
  </onentry>
</state>""", queues)
    ids = session.variables["ids"]
    assert [(r, d, i) for _, r, d, i, _ in queues.sent] == [
        ("vixn.create", {"queue": "VQ"}, ids[0]), ("target.find", {"vixn_id": "vx-1"}, ids[1]),
        ("agent.release", {"agent_id": "agent-7"}, ids[2]), ("vixn.cancel", {"vixn_id": "vx-1"}, ids[3])]
    assert len(set(ids)) == 4 and {s for s, *_ in queues.sent} == {session.id}
    assert session.variables["ewt"] == 30.5


def test_the_figures_are_those_of_the_moment_the_code_runs() -> None:
    queues = Queues()
    session = start("""
<datamodel><data id="w" expr="[]"/></datamodel>
<state id="ask"><transition event="look"><script>w.push(_genesys.queue.waiting('VQ'))</script></transition></state>
""", queues)
    session.send("look")
    session.send("look")
    queues.figures["VQ"]["waiting"] = 9
    queues.text = json.dumps(queues.figures)
    session.send("look")
    session.doc.datamodel.pool.drop_all()  # a context rebuilt from the snapshot gets them too
    queues.figures["VQ"]["waiting"] = 2
    queues.text = json.dumps(queues.figures)
    session.send("look")
    assert session.variables["w"] == [4, 4, 9, 2]
    assert queues.reads >= 3  # read before each script that may call it (pushed only when new)


def test_a_request_made_before_the_code_failed_is_sent_and_the_code_fails() -> None:
    queues = Queues()
    session = start("""
<datamodel><data id="error" expr="''"/></datamodel>
<state id="ask">
  <onentry><script>_genesys.queue.reserveTarget('vx-9'); nothing.here();</script></onentry>
  <transition event="error.execution" target="done"><assign location="error" expr="_event.data.message"/></transition>
</state>
<state id="done"/>""", queues)
    assert session.active_state_ids() == ["done"] and "nothing" in session.variables["error"]
    assert [r for _, r, *_ in queues.sent] == ["target.find"]


def test_a_refused_request_or_no_platform_is_an_error_of_the_flow() -> None:
    for requests, refuse, message in ((True, True, "refused"), (False, False, "no contact-center platform")):
        queues = Queues()
        queues.refuse = refuse
        session = start("""
<datamodel><data id="error" expr="''"/></datamodel>
<state id="ask">
  <onentry><script>_genesys.queue.reserveTarget('vx-9')</script></onentry>
  <transition event="error.execution" target="done"><assign location="error" expr="_event.data.message"/></transition>
</state>
<state id="done"/>""", queues, requests=requests)
        assert session.active_state_ids() == ["done"]
        assert message in session.variables["error"]
        assert queues.sent == []


def test_without_queue_facts_there_is_no_queue_object() -> None:
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(facilities=OrsFacilities(OrsSources())))
    doc = compile_document(HEAD + """<datamodel><data id="t" expr="typeof _genesys.queue"/>
        <data id="s" expr="typeof _genesys.session"/></datamodel><state id="ask"/></scxml>""", registry=registry)
    session = SessionHost(registry=registry).start_session(doc)
    assert session.variables == {"t": "undefined", "s": "object"}
