"""Running a benchmark's ``--quick`` smoke run as a real subprocess and reading its report."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.conftest import REPO


def quick_run(script: str, *options: str) -> dict[str, Any]:
    """``bench/<script> --quick [options]``: it must exit 0 and report ok with no problems; its
    last line (one JSON object with every figure) is returned."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), "--quick", *options], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True and result["problems"] == []
    return result
