"""``bench/request_chain.py``: the create request's chain (routes, middlewares, keys, access log)
runs on the micro-benchmark's stand-in runtime, and so does its bare floor (``--bare``).

It was not run by any test, so an engine change could stop it unnoticed (as ``bench/log_cost.py``
once did when its stand-ins fell behind what the engine reads). The bench exits non-zero when a
request is not answered 200. No timing is asserted (the machine is shared); what must hold is that
both runs end cleanly and report a figure for every round.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO

REQUESTS, ROUNDS = 200, 3  # instead of 1000 x 21


def run_chain(*options: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "request_chain.py"), "--requests", str(REQUESTS),
                           "--rounds", str(ROUNDS), *options], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("bare", [False, True], ids=["engine", "bare"])
def test_every_round_answers_and_is_timed(bare: bool) -> None:
    result = run_chain(*(["--bare"] if bare else []))
    assert result["bare"] is bare
    assert len(result["rounds_us"]) == ROUNDS and all(us > 0 for us in result["rounds_us"])
    assert result["us_per_request"] in result["rounds_us"]  # the median of an odd number of rounds
