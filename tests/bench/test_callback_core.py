"""``bench/callback_core.py --quick``: the in-process callback benchmark runs the real runtime to the end.

No timing is asserted; what must hold is that every callback it created was stored COMPLETED with
reason AGENT_CONNECTED (the bench reads each one back) and that the engine logged each completion.
"""

from __future__ import annotations

from tests.bench.quick import quick_run


def test_quick_run_completes_every_callback_it_times() -> None:
    result = quick_run("callback_core.py")
    assert result["completed_lines"] == 20 + 2 * 100  # the warm-up's and both rounds'
    assert len(result["rounds_ms"]) == 2 and all(ms > 0 for ms in result["rounds_ms"])
