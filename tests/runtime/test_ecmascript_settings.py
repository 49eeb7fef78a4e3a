"""The ECMAScript sandbox limits are engine settings (``ecmascript_*``) and reach the datamodel."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from engine.runtime import Runtime
from engine.scxml import compile_document
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits
from engine.settings import Settings

LIMITS = ("cpu_seconds", "memory_bytes", "live_contexts", "idle_seconds")


def test_the_settings_default_to_the_sandbox_defaults() -> None:
    settings, limits = Settings(), SandboxLimits()
    assert {name: getattr(settings, f"ecmascript_{name}") for name in LIMITS} == \
        {name: getattr(limits, name) for name in LIMITS}
    assert set(LIMITS) <= {f.name for f in fields(SandboxLimits)}


async def test_a_setting_from_the_file_or_the_environment_reaches_the_kind(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "engine.toml").write_text("[engine]\necmascript_cpu_seconds = 0.05\necmascript_live_contexts = 7\n")
    env = {"CALLBACK_ENGINE_ECMASCRIPT_MEMORY_BYTES": "8388608", "CALLBACK_ENGINE_ECMASCRIPT_IDLE_SECONDS": "0.5"}
    runtime = await Runtime.build(Settings.load(config_dir=config, env=env, data_dir=tmp_path / "data",
                                                persistence=False))
    try:
        kind = runtime.registry.datamodel("ecmascript")
        assert isinstance(kind, EcmaScriptDataModel)
        assert (kind.limits.cpu_seconds, kind.limits.memory_bytes, kind.limits.live_contexts,
                kind.limits.idle_seconds) == (0.05, 8 * 1024 * 1024, 7, 0.5)
        assert (kind.pool.live_contexts, kind.pool.idle_seconds) == (7, 0.5)
        # ...and the sandbox applies it: a runaway script is stopped after the configured CPU time.
        doc = compile_document(
            '<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript">'
            '<datamodel><data id="error" expr="\'\'"/></datamodel>'
            '<state id="s"><onentry><script>while (true) {}</script></onentry>'
            '<transition event="error.execution" target="t"><assign location="error" expr="_event.data.message"/>'
            '</transition></state><state id="t"/></scxml>', registry=runtime.registry)
        session = runtime.manager.start_session(doc)
        assert session.active_state_ids() == ["t"]
        assert "stopped after 0.05 s of CPU time" in session.variables["error"]
    finally:
        await runtime.close()


async def test_a_bad_limit_stops_the_engine_from_starting(tmp_path: Path) -> None:
    settings = Settings.load(config_dir=tmp_path / "none", env={"CALLBACK_ENGINE_ECMASCRIPT_CPU_SECONDS": "0"},
                             data_dir=tmp_path / "data", persistence=False)
    with pytest.raises(ValueError, match="cpu_seconds must be a positive number"):
        await Runtime.build(settings)
