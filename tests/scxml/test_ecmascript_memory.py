"""Issue 15: the memory of JavaScript contexts let go goes back to the system (the C allocator
would otherwise keep the process at its peak of live contexts, ~200 KB per waiting session)."""

from __future__ import annotations

import json
import subprocess
import sys

from engine.scxml.ecmascript import pool
from tests.conftest import REPO

PROBE = r"""
import asyncio, json
from engine.scxml import SessionHost, compile_document, standard_registry
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))

async def main():
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(SandboxLimits(idle_seconds=0.05)))
    host = SessionHost(registry=registry)
    kind = registry.datamodel("ecmascript")
    doc = compile_document('<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">'
        '<datamodel><data id="a" expr="({x: [1, 2, 3]})"/></datamodel><state id="s">'
        '<transition event="go"><assign location="a.y" expr="a.x.length"/></transition></state></scxml>',
        registry=host.registry)
    before = rss()
    sessions = [host.start_session(doc) for _ in range(200)]
    for s in sessions:
        s.send("go")
    peak = rss()
    await asyncio.sleep(0.5)  # the idle sweep lets every context go
    after = rss()
    print(json.dumps({"live": sum(s.datamodel.live for s in sessions), "before": before, "peak": peak,
                      "after": after, "trimmed": kind.pool.trimmed}))

asyncio.run(main())
"""


def test_the_idle_sweep_gives_the_memory_of_dropped_contexts_back() -> None:
    assert pool._TRIM is not None  # the engine runs on glibc (Debian)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    grown = figures["peak"] - figures["before"]
    assert figures["live"] == 0 and figures["trimmed"] >= 1
    assert grown > 200 * 100_000, figures  # the 200 contexts were there
    assert figures["after"] - figures["before"] < grown / 4, figures  # and most of it went back
