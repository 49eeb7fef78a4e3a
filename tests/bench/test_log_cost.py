"""``bench/log_cost.py`` runs against today's engine: the lifecycle log's stand-ins must keep up
with what it reads from a session (it broke once when the log began to read ``lookup``)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_the_log_cost_bench_writes_each_callbacks_lines_and_exits_clean() -> None:
    callbacks, rounds = 20, 2
    done = subprocess.run([sys.executable, str(REPO / "bench" / "log_cost.py"), "--callbacks", str(callbacks),
                           "--rounds", str(rounds)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Logging error" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Each callback: its create request's access line, "callback created", "callback completed".
    assert result["lines"] == 3 * callbacks * (rounds + 1), result
    assert result["us_per_callback"] > 0
