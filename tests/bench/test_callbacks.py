"""``bench/callbacks.py --quick``: the end-to-end callback benchmark runs against today's engine.

It was not run by any test, so an engine change could stop it unnoticed (as ``bench/log_cost.py``
once stopped). No timing is asserted (the machine is shared); what must hold is that every callback
it created was read back COMPLETED with reason AGENT_CONNECTED, the engine's CPU per callback and
the bare server's reference rate were measured, and the engine logged no warning.
"""

from __future__ import annotations

from tests.bench.quick import quick_run

CALLBACKS = 300  # --quick's timed phase


def test_quick_run_completes_every_callback_and_measures_the_reference() -> None:
    result = quick_run("callbacks.py")
    phase, headline = result["phase"], result["headline"]
    assert phase["callbacks"] == CALLBACKS
    assert phase["create"]["ok"] == phase["read_back"]["ok"] == CALLBACKS
    assert phase["states"] == {"COMPLETED": CALLBACKS} and phase["reasons"] == {"AGENT_CONNECTED": CALLBACKS}
    assert phase["events_checked"] == 20
    assert phase["create_to_complete"]["p50_ms"] > 0
    assert headline["callbacks_per_second"] > 0 and headline["engine_cpu_ms_per_callback"] > 0
    assert len(headline["reference_rates"]) == 2 and all(rate > 0 for rate in headline["reference_rates"])
    assert headline["ratio_callbacks_vs_reference"] > 0
    engine = result["engine_process"]
    assert engine["exit_code"] == 0 and engine["log_alarm_count"] == 0, engine["log_alarms"]
