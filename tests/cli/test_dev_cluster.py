"""``./dev cluster --check`` (tools/dev_cluster.py): the platform process and the engine nodes on
one PostgreSQL database start, a callback created through the first node completes, and the
whole cluster stops cleanly (every node exits 0 on SIGTERM)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO
from tools.postgres import free_port


def test_a_one_node_cluster_completes_a_callback_and_stops(postgres, tmp_path):
    work = tmp_path / "cluster"
    done = subprocess.run(
        [sys.executable, "tools/dev_cluster.py", "--nodes", "1", "--check", "--database-url", postgres.new_database(),
         "--port", str(free_port()), "--platform-port", str(free_port()), "--work", str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "check: callback" in done.stdout and "COMPLETED (AGENT_CONNECTED) through node1" in done.stdout
    assert "admin key" in done.stdout and done.stdout.rstrip().endswith("cluster stopped")
    log = (work / "node1.log").read_text()
    assert "engine stopped" in log, log[-3000:]
