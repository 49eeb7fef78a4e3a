"""``bench/cluster.py --quick`` end to end: 2 real engine nodes on one PostgreSQL database
with the platform process, then a 2-node failover (kill -9).

No rate is asserted (the machine is shared); what must hold is that every callback completed, each
node's CPU per callback was measured, and the failover was seen: the victim's partitions claimed
by the other node and one of its running sessions written there."""

from __future__ import annotations

from tests.bench.quick import quick_run


def test_quick_run_measures_every_cluster_size_and_a_failover() -> None:
    result = quick_run("cluster.py")
    assert [r["nodes"] for r in result["runs"]] == [2]
    for run in result["runs"]:
        assert run["reasons"] == {"COMPLETED/AGENT_CONNECTED": 40}
        assert run["callbacks_per_second"] > 0
        assert set(run["cpu_ms_per_callback_per_node"]) == {f"node{i}" for i in range(1, run["nodes"] + 1)}
        assert run["cpu_seconds"]["postgres"] > 0
    failover = result["failover"]
    assert failover["its_sessions"] > 0
    assert 0 < failover["kill_to_first_claim_s"] <= failover["kill_to_first_moved_write_s"] < 30
