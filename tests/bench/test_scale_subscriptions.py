"""``bench/scale_subscriptions.py --quick``: the publish-cost-by-subscriptions benchmark runs
against today's notifier and registry.

It was not run by any test of its own (``bench/scale.py`` imports its ``run`` as a section), so a
change of the notification classes it builds could stop it unnoticed (as ``bench/log_cost.py``
once stopped). No timing is asserted (the machine is shared); what must hold is that every size
held the subscriptions it was built with, each event reached exactly the subscriptions that match
it (its callback's own and two of the three broad patterns, at every size), and every figure the
ratio is built from was measured.
"""

from __future__ import annotations

from tests.bench.quick import quick_run

SIZES = (100, 1000, 10_000, 50_000)


def test_quick_run_matches_each_event_alike_at_every_size() -> None:
    result = quick_run("scale_subscriptions.py")
    assert sorted(int(size) for size in result["sizes"]) == list(SIZES)
    for size in SIZES:
        figures = result["sizes"][str(size)]
        assert figures["subscriptions"] == size
        # callback/<service>/<id> matches its own subscription, "callback/*" and "*"; never
        # "callback/svc0/*" (no callback of svc0 publishes) nor a news/, prefix or suffix pattern
        assert figures["deliveries_per_event"] == 3.0, (size, figures)
        assert figures["publish_us_per_event"] > 0 and figures["subscribe_and_unsubscribe_us"] > 0, size
        assert figures["before_fnmatch_scan_us_per_event"] > 0 and figures["before_events_timed"] >= 1, size
    assert result["ratios"]["publish_50000_vs_100"] > 0
    assert result["subscribe_and_unsubscribe_50000_vs_100"] > 0
