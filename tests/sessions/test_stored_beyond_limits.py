"""A flow version stored before one of the engine's bounds existed (here ``MAX_ACTIVE_STATES``)
keeps running the sessions started on it after a restart; it starts no new one, and the flow
says why."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.runtime import Runtime
from engine.scxml import Event, compile_document, over_limits
from engine.scxml import compiler as scxml_compiler
from engine.scxml.errors import DocumentError
from engine.sessions.flows import FlowError
from engine.settings import Settings
from tests.support.eventually import eventually

REGIONS = 200  # beyond MAX_ACTIVE_STATES (128)


def wide_flow() -> str:
    regions = "".join(f'<state id="r{i}"/>' for i in range(1, REGIONS))
    return f"""<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="p">
<datamodel><data id="pokes" expr="0"/></datamodel>
<parallel id="p">
  <state id="r0"><transition event="poke"><assign location="pokes" expr="pokes + 1"/></transition></state>
  {regions}
</parallel></scxml>"""


def settings(tmp_path: Path) -> Settings:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "wide.scxml").write_text(wide_flow())
    return Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data",
                         flows_dir=flows, flow_watch_interval=0)


def test_limits_false_compiles_and_lists_what_is_beyond() -> None:
    with pytest.raises(DocumentError, match="states active at once"):
        compile_document(wide_flow())
    doc = compile_document(wide_flow(), limits=False)
    beyond = over_limits(doc)
    assert len(beyond) == 1 and f"{REGIONS} states active at once" in beyond[0].message
    assert over_limits(compile_document('<scxml xmlns="http://www.w3.org/2005/07/scxml"><state id="a"/></scxml>',
                                        limits=False)) == []


NARROW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="one">
<state id="one"/></scxml>"""


@pytest.mark.parametrize("earlier", [False, True], ids=["only-version", "after-a-fitting-one"])
async def test_sessions_of_a_version_stored_before_a_limit_survive_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, earlier: bool) -> None:
    if earlier:  # version 1 fits every bound
        (tmp_path / "flows").mkdir()
        (tmp_path / "flows" / "wide.scxml").write_text(NARROW)
        engine = await Runtime.build(Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data",
                                                   flows_dir=tmp_path / "flows", flow_watch_interval=0))
        await engine.start()
        await engine.close()
    # An engine from before the bound: the wide version is accepted and a session of it stored.
    monkeypatch.setattr(scxml_compiler, "MAX_ACTIVE_STATES", 10_000)
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    sid = engine.manager.start_flow("wide").id
    await engine.manager.commit()
    await engine.close()

    monkeypatch.setattr(scxml_compiler, "MAX_ACTIVE_STATES", 128)
    caplog.set_level(logging.WARNING, logger="engine")
    engine = await Runtime.build(settings(tmp_path))
    await engine.start()
    try:
        session = engine.manager.sessions.get(sid)
        assert session is not None and session.is_running, "the stored session was not restored"
        assert len(session.active_state_ids()) == REGIONS + 1  # the <parallel> and its regions
        engine.manager.send_to(sid, Event("poke"))
        await engine.manager.commit()
        await eventually(lambda: session.datamodel.variable("pokes") == 1, timeout=2, expected="the poke taken")

        # No new session starts on it: on the version before it if there is one; the flow says why.
        described = engine.flows.describe_flow("wide")
        assert any("states active at once" in p for p in described["refused"]), described
        assert any("goes beyond this engine's limits" in r.getMessage() for r in caplog.records)
        if earlier:
            assert described["current"] == 1, described
            assert engine.manager.start_flow("wide").active_state_ids() == ["one"]
        else:
            assert described["current"] is None, described
            with pytest.raises(FlowError):
                engine.manager.start_flow("wide")
    finally:
        await engine.close()
