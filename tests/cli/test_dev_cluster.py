"""``./dev cluster --check`` (tools/dev_cluster.py): the platform process and the engine nodes on
one PostgreSQL database start, a callback created through the first node completes, and the
whole cluster stops cleanly (every node exits 0 on SIGTERM)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.support.ports import free_port, free_ports


@pytest.mark.parametrize("nodes", [1, 2])
def test_a_cluster_completes_a_callback_and_stops(postgres, tmp_path, nodes):
    work = tmp_path / "cluster"
    done = subprocess.run(
        [sys.executable, "tools/dev_cluster.py", "--nodes", str(nodes), "--check", "--database-url",
         postgres.new_database(), "--port", str(free_ports(nodes)), "--platform-port", str(free_port()),
         "--work", str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"COMPLETED (AGENT_CONNECTED), created through node1, read through node{nodes}" in done.stdout
    assert "admin key" in done.stdout and done.stdout.rstrip().endswith("cluster stopped")
    for i in range(1, nodes + 1):
        log = (work / f"node{i}.log").read_text()
        assert "engine stopped" in log, log[-3000:]
        assert f"node node{i} claimed" in log  # each held partitions
