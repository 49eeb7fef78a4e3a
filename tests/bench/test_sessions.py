"""``bench/sessions.py --quick``: the session-API benchmark runs against today's engine.

It was not run by any test, so an engine change could stop it unnoticed (as ``bench/log_cost.py``
once stopped). No timing is asserted (the machine is shared); what must hold is that both engines
(persistence off and on) started every session and counted every event acknowledged to it, the
server CPU per request and the bare server's reference rate were measured, and the memory engine
holds every idle session it started.
"""

from __future__ import annotations

from tests.bench.quick import quick_run

STARTS, EVENTS, IDLE, WARMUP = 500, 1000, 500, 2 * 64  # --quick's counts; warm-up 2 x concurrency


def test_quick_run_starts_and_counts_every_session_on_both_engines() -> None:
    result = quick_run("sessions.py")
    for name in ("persistence_off", "persistence_on"):
        engine = result[name]
        assert engine["sessions_started"] == STARTS and engine["events_acknowledged"] == EVENTS, name
        assert engine["live_sessions"] == WARMUP + STARTS and engine["verified_sessions"] == 50, name
        for kind in ("start", "event"):
            assert engine[kind]["ok"] == engine[kind]["requests"] > 0, (name, kind)
            assert engine[kind]["server_cpu_ms_per_request"] > 0, (name, kind)
        assert engine["exit_code"] == 0 and engine["log_alarm_count"] == 0, (name, engine["log_alarms"])
    assert result["reference"]["rate"] > 0 and result["reference"]["server_cpu_ms_per_request"] > 0
    memory = result["memory"]
    assert memory["idle_sessions"] == IDLE and memory["live_sessions"] == memory["warmup_sessions"] + IDLE
    headline = result["headline"]
    for kind in ("start", "event"):
        assert headline[f"{kind}_on_vs_reference"] > 0 and headline[f"{kind}_off_vs_reference"] > 0, kind
    assert isinstance(headline["rss_bytes_per_session"], int)
