"""Micro-benchmark: the engine's CPU per callback without HTTP, in one process.

Run from a clone's root as ``python bench/callback_core.py``. It builds the real runtime
(``Runtime.build``: SQLite persistence in a fresh data folder, the shipped callback flow, the fast
contact-center simulator of ``bench/callbacks.py``) and hands ``--callbacks`` creates straight to
the callback service, ``--concurrency`` at a time, each waiting until its callback is stored as
the create request does; then it waits until every callback is COMPLETED. The figure is the
process's CPU (every thread: the loop and the SQLite writer) from the first create to the last
completion, per callback; the HTTP layer is left out (``bench/request_chain.py`` times it).

``bench/callbacks.py`` measures the same work through real requests from a client on the same two
cores, whose noise hides changes of a few per cent; this one runs ``--rounds`` rounds on one
runtime and reports their median, so two revisions can be compared by running it alternately
from both clones (A/B/A/B...). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.callbacks import SERVICE, SERVICE_OPTIONS  # noqa: E402
from bench.common import simulator_toml  # noqa: E402


def _config(root: Path, time_scale: float, agents: int) -> Path:
    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "business-hours").mkdir()
    (config / "simulator.toml").write_text(simulator_toml(time_scale, agents))
    (config / "services" / f"{SERVICE}.json").write_text(json.dumps(SERVICE_OPTIONS))
    return config


async def _round(runtime: Any, callbacks: int, concurrency: int, stall: float) -> tuple[float, float, list[str]]:
    """Create ``callbacks`` and wait until all are COMPLETED: (CPU seconds, wall seconds, their ids)."""
    service = runtime.callbacks
    ids: list[str] = []
    queue = iter(range(callbacks))

    async def client() -> None:
        for i in queue:
            record = await service.create(SERVICE, {"_customer_number": f"+1555{i % 10_000_000:07d}",
                                                    "order": f"A-{i}"})
            ids.append(record["_id"])

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    deadline = time.monotonic() + stall
    open_ = ids  # narrowed at each look, so the watching costs little of the CPU measured
    while True:
        open_ = [cid for cid in open_ if (r := service.records.get(cid)) is not None
                 and r["_callback_state"] != "COMPLETED"]
        if not open_ and not runtime.manager.sessions:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(open_)} callbacks still open after {stall} s")
        await asyncio.sleep(0.002)
    return time.process_time() - cpu, time.perf_counter() - wall, ids


async def _check(runtime: Any, ids: list[str]) -> list[str]:
    """Every callback read back as stored: COMPLETED with reason AGENT_CONNECTED, else a problem."""
    await runtime.manager.commit()
    problems = []
    for cid in ids:
        record = await runtime.callbacks.get(cid)
        if (record["_callback_state"], record.get("_callback_reason")) != ("COMPLETED", "AGENT_CONNECTED"):
            problems.append(f"{cid}: {record['_callback_state']} {record.get('_callback_reason')}")
    return problems


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from engine.logs import setup_logging
    from engine.runtime import Runtime
    from engine.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        setup_logging("INFO", "text", stream=open(root / "engine.log", "w", encoding="utf-8"))  # noqa: SIM115
        settings = Settings.load(config_dir=_config(root, args.time_scale, args.agents), env={},
                                 data_dir=root / "data", flows_dir=REPO / "scxml", persistence=True)
        runtime = await Runtime.build(settings)
        await runtime.start()
        try:
            await _round(runtime, args.warmup, args.concurrency, args.stall)
            rounds = [await _round(runtime, args.callbacks, args.concurrency, args.stall)
                      for _ in range(args.rounds)]
            problems = [p for _, _, ids in rounds for p in await _check(runtime, ids)]
        finally:
            await runtime.close()
        logging.shutdown()
        completed = (root / "engine.log").read_text(encoding="utf-8").count(" completed ")
    per_cb = [cpu / args.callbacks * 1e3 for cpu, _, _ in rounds]
    return {"cpu_ms_per_callback": round(statistics.median(per_cb), 4),
            "rounds_ms": [round(x, 4) for x in per_cb],
            "callbacks_per_second": [round(args.callbacks / wall, 1) for _, wall, _ in rounds],
            "completed_lines": completed, "callbacks": args.callbacks, "rounds": args.rounds,
            "problems": problems[:20], "ok": not problems, "pid": os.getpid()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=2000, help="callbacks per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--time-scale", type=float, default=2000.0)
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--stall", type=float, default=60.0, help="seconds a round may wait for its last completion")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 callbacks, 2 rounds")
    options = parser.parse_args()
    if options.quick:
        options.callbacks, options.rounds, options.warmup = 100, 2, 20
    result = asyncio.run(main(options))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)
