"""``bench/ecmascript_context.py --quick``: the ECMAScript context and session micro-benchmark runs
on this tree and on the older revision it compares with (extracted by ``git archive``).

It was not run by any test, so a change of the sandbox or session API it calls could stop it
unnoticed (as ``bench/log_cost.py`` once stopped). Each worker checks that its sessions took the
transition it times and fails otherwise. No timing is asserted (the machine is shared); what must
hold is that both sides ran every round and every figure and ratio was reported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.ecmascript_context import DEFAULT_AGAINST
from tests.conftest import REPO

FIGURES = ("bare_context_us", "context_us", "session_us")
ROUNDS = 2  # --quick's


def test_quick_run_measures_both_sides_in_every_round() -> None:
    against = subprocess.run(["git", "cat-file", "-e", f"{DEFAULT_AGAINST}^{{commit}}"], cwd=REPO, capture_output=True)
    if against.returncode != 0:  # a shallow clone: the older side cannot be extracted
        pytest.skip(f"this clone lacks commit {DEFAULT_AGAINST}, the older side the bench compares with "
                    "(a shallow clone)")
    done = subprocess.run([sys.executable, str(REPO / "bench" / "ecmascript_context.py"), "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rounds"] == ROUNDS
    for figure in FIGURES:
        sides = result[figure]
        assert len(sides["old_rounds"]) == len(sides["new_rounds"]) == ROUNDS, figure
        assert all(us > 0 for us in sides["old_rounds"] + sides["new_rounds"]), figure
        assert sides["old"] > 0 and sides["new"] > 0 and sides["ratio_new_old"] > 0, figure
