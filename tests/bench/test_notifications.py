"""``bench/notifications.py --quick``: the status-notification benchmark runs against today's engine.

It was not run by any test, so an engine change could stop it unnoticed (as ``bench/log_cost.py``
once stopped). No timing is asserted (the machine is shared); what must hold is that every status
event of every callback of the three phases reached the receiver exactly once, the engine's CPU per
message and the bare POST loop's reference were measured, and the timed flow's latency was taken.
"""

from __future__ import annotations

from tests.bench.quick import quick_run

WARMUP, SATURATED, PACED = 10, 100, 60  # --quick's callbacks per phase


def test_quick_run_delivers_every_message_once_and_measures_the_reference() -> None:
    result = quick_run("notifications.py")
    per_callback = result["per_callback_messages"]
    assert per_callback > 0
    checks = result["delivery_checks"]
    for name, callbacks in (("warm", WARMUP), ("sat", SATURATED), ("paced", PACED)):
        assert checks[name]["expected"] == callbacks * per_callback, (name, checks[name])
        assert checks[name]["missing"] == checks[name]["duplicates"] == 0, (name, checks[name])
    saturated, paced = result["saturated"], result["paced"]
    assert saturated["callbacks"] == SATURATED and saturated["messages"] == SATURATED * per_callback
    assert paced["callbacks"] == PACED and paced["messages"] == PACED * per_callback
    assert paced["latency_from_state_entry"]["samples"] > 0  # the paced phase runs the timed flow
    headline = result["headline"]
    assert headline["messages_checked"] == (WARMUP + SATURATED + PACED) * per_callback
    assert headline["notifications_per_second"] > 0 and headline["engine_cpu_ms_per_message_saturated"] > 0
    assert len(headline["reference_rates"]) == 2 and all(rate > 0 for rate in headline["reference_rates"])
    assert headline["reference_cpu_ms_per_message"] > 0 and headline["cpu_ratio_saturated_vs_reference"] > 0
    reference = result["reference_check"]
    assert reference["received"] == reference["distinct"] == reference["expected"] > 0
