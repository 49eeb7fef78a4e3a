"""``bench/scale.py --quick`` end to end: real engines over bulk-built databases, every figure printed.

No timing is asserted (the machine is shared); what must hold is that the run completes, every
engine restored what its database held and the JSON line carries every ratio the report promises.
"""

from __future__ import annotations

from tests.bench.quick import quick_run

KINDS = ("query_by_id", "query_by_number", "query_by_state", "open_list_of_service", "events_of_callback",
         "capacity_check_create", "queue_check_create")


def test_quick_run_prints_every_ratio() -> None:
    result = quick_run("scale.py")
    headline = result["headline"]
    for kind in ("create_scheduled", "create_immediate"):
        for figure in ("p50", "cpu"):
            assert isinstance(headline[f"{kind}_{figure}_2000_vs_100"], float)
    for kind in KINDS:
        assert isinstance(headline[f"{kind}_p50_history_vs_empty"], float), kind
    assert isinstance(headline["purge_query_history_vs_empty"], float)
    assert 0 < headline["startup_s_at_max_live"] < 60
    assert 0 < headline["rss_per_live_callback_bytes"] < 1 << 20
    assert all(size["log"]["restored"] == int(n) for n, size in result["live"]["sizes"].items())
