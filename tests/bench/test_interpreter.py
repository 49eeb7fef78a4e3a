"""``bench/interpreter.py --quick`` end to end: every figure it promises is measured.

The hibernation row once stopped the whole benchmark: its document's ``Math.max`` came to be
answered without a JavaScript context, so no context was ever built and the run failed. No timing
is asserted (the machine is shared); the run must complete and print each figure.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

FIGURES = ("event_rate_ratio", "memory_ratio", "sessions_rate_ratio", "ecmascript_event_rate_ratio",
           "ecmascript_idle_bytes_10_states", "ecmascript_hibernate_restore_us_per_event")


def test_quick_run_measures_every_figure() -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "interpreter.py"), "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for figure in FIGURES:
        assert isinstance(result[figure], float) and result[figure] > 0, figure
    assert set(result["targets_met"]) == set(result["targets"])
