"""ECMAScript datamodel micro-benchmark: CPU per JavaScript context and per session, this tree
against an older revision, side by side (issue 15).

Run from the repository root as ``python bench/ecmascript_context.py`` (``--quick`` for a smoke
run). The older revision (``--against``, by default the one before issue 15's datamodel work)
is extracted with ``git archive`` into a temporary folder; each side runs in its own worker
process, and the rounds alternate between them, so a disturbance of the machine hits both alike.
Each worker measures, in thread CPU time:

* **context**: building one session context (``sandbox.new_context``: QuickJS runtime and
  context, limits, the prelude), and a bare ``quickjs.Context()`` for the floor;
* **session**: a session of a document with the default callback flow's ``<datamodel>`` (read
  from that side's ``scxml/callback.scxml``) started, sent one event whose transition assigns
  from ``_event.data`` and tests a condition, and snapshotted (``to_state``), as the engine does
  after each macrostep. On the older side each session builds its own context; on today's
  tree the engine answers these expressions without JavaScript and builds none, so the session
  ratio is that whole difference, not a cheaper context (the context figures measure that).

The medians of the rounds are reported with the ratio new / old. The last line of output is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_AGAINST = "0f5d34f"  # main before issue 15's ecmascript changes

TRANSITION = """<state id="s">
  <transition event="go" cond="_wait_for_agent &amp;&amp; _event.data.n > 0">
    <assign location="vixn_id" expr="_event.data.id"/>
    <assign location="c_target" expr="_event.data.target"/>
    <assign location="c_call_num_attempt" expr="c_call_num_attempt + 1"/>
    <assign location="c_agent_id" expr="''"/>
  </transition>
</state>"""


def worker(contexts: int, sessions: int) -> dict[str, Any]:
    """One round in this process: the figures of the code importable from the current folder."""
    import quickjs

    from engine.scxml import SessionHost, compile_document, standard_registry
    from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits
    from engine.scxml.ecmascript.sandbox import new_context

    limits = SandboxLimits()

    def per_call(fn: Any, n: int) -> float:
        fn()
        started = time.thread_time()
        for _ in range(n):
            fn()
        return (time.thread_time() - started) / n * 1e6

    bare_us = per_call(quickjs.Context, contexts)
    context_us = per_call(lambda: new_context(limits), contexts)

    flow = (Path("scxml") / "callback.scxml").read_text()
    datamodel = re.search(r"<datamodel>.*?</datamodel>", flow, re.S).group(0)  # type: ignore[union-attr]
    text = ('<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">'
            + datamodel + TRANSITION + "</scxml>")
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(limits))
    host = SessionHost(registry=registry)
    doc = compile_document(text, registry=host.registry)
    event = {"id": "vixn-1", "n": 1, "target": {"agent": "a1", "extension": "1001", "ok": True}}

    def one_session() -> None:
        s = host.start_session(doc)
        s.send("go", event)
        s.to_state()
        if s.variables["c_call_num_attempt"] != 1:
            raise AssertionError("the session did not take its transition")

    session_us = per_call(one_session, sessions)
    return {"bare_context_us": round(bare_us, 1), "context_us": round(context_us, 1),
            "session_us": round(session_us, 1)}


def run_side(folder: Path, contexts: int, sessions: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "ecmascript_context.py"), "--worker",
                          "--contexts", str(contexts), "--sessions", str(sessions)],
                         cwd=folder, capture_output=True, text=True, timeout=600,
                         env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise RuntimeError(f"worker in {folder} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few rounds, few iterations")
    parser.add_argument("--against", default=DEFAULT_AGAINST, help=f"older revision (default {DEFAULT_AGAINST})")
    parser.add_argument("--rounds", type=int, help="rounds per side (default 7, quick 2)")
    parser.add_argument("--contexts", type=int, help="contexts built per round (default 300, quick 30)")
    parser.add_argument("--sessions", type=int, help="sessions per round (default 200, quick 20)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 7)
    contexts = args.contexts or (30 if args.quick else 300)
    sessions = args.sessions or (20 if args.quick else 200)
    if args.worker:
        print(json.dumps(worker(contexts, sessions)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-ecmascript-") as tmp:
        old = Path(tmp)
        archive = subprocess.run(["git", "archive", args.against, "engine", "scxml"], cwd=REPO,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        sides = {"old": old, "new": REPO}
        results: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        for r in range(rounds):
            for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
                results[name].append(run_side(sides[name], contexts, sessions))
    summary: dict[str, Any] = {"bench": "ecmascript_context", "against": args.against, "rounds": rounds,
                               "contexts_per_round": contexts, "sessions_per_round": sessions}
    for figure in ("bare_context_us", "context_us", "session_us"):
        old_median = statistics.median(r[figure] for r in results["old"])
        new_median = statistics.median(r[figure] for r in results["new"])
        summary[figure] = {"old": old_median, "new": new_median, "ratio_new_old": round(new_median / old_median, 3),
                           "old_rounds": [r[figure] for r in results["old"]],
                           "new_rounds": [r[figure] for r in results["new"]]}
        print(f"{figure}: old {old_median:.1f} us, new {new_median:.1f} us, new/old {new_median / old_median:.2f}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
