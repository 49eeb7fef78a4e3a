"""What the engine benchmarks (``sessions.py``, ``callbacks.py``, ``notifications.py``, ``latency.py``) share.

Server processes (the bare reference server, the engine) started and stopped around a
measurement, the engine log read for alarms, the fast contact-center simulator, a few
report helpers, and ``bench_main``: run in a fresh work folder, print the report, the
problems and the JSON line last. The load driver and the ``/proc`` readers are in
``bench/httpload.py``.

The scripts put the repository root on ``sys.path`` before importing this module.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bench.httpload import wait_healthy
from tests.support.engine_process import CLIENT_KEY, EngineProcess, free_port

REPO = Path(__file__).resolve().parent.parent
#: Headers of a client API request.
HEADERS = {"x-api-key": CLIENT_KEY, "content-type": "application/json"}
#: Share of one core taken by others (or stolen) above which a timed stretch counts as disturbed.
DISTURBED = 0.15
#: Engine log lines worth reporting: anything at WARNING or above, and tracebacks.
LOG_ALARM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")

#: The benchmarks' virtual queue, and the simulated seconds of one callback's phases: ring,
#: connect treatment, route, talk.
QUEUE = "Callback_VQ"
RING, TREATMENT, ROUTE, HANDLE = 8.0, 4.0, 1.0, 30.0


class Problems(list[str]):
    """Everything that makes the figures untrustworthy; a non-empty list fails the run."""


class BenchFailed(RuntimeError):
    """A check failed so badly that going on would measure nothing."""


# -- processes -------------------------------------------------------------------------------

@asynccontextmanager
async def server_process(client: aiohttp.ClientSession, workdir: Path, script: Path, name: str,
                         *args: str) -> AsyncIterator[tuple[str, int]]:
    """``python script *args --port N`` on a free loopback port, its output in ``workdir/<name>.log``.

    Yields its URL and pid once ``GET /health`` answers 200; terminated on exit.
    """
    port = free_port()
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen([sys.executable, str(script), *args, "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    log.close()
    try:
        await wait_healthy(client, f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def bare_server(client: aiohttp.ClientSession, workdir: Path) -> AbstractAsyncContextManager[tuple[str, int]]:
    """The reference server (``bench/bare_server.py``) as a subprocess on loopback; yields its URL and pid."""
    return server_process(client, workdir, REPO / "bench" / "bare_server.py", "bare_server")


@asynccontextmanager
async def managed_engine(engine: EngineProcess, record: dict[str, Any],
                         findings: Callable[[Path], dict[str, Any]]) -> AsyncIterator[EngineProcess]:
    """Start ``engine``; on exit stop it gracefully and note in ``record`` how that went
    (``exit_code``, ``stop_seconds``) and what ``findings`` made of its log."""
    try:
        await engine.start()
        yield engine
    finally:
        began = time.perf_counter()
        try:
            record["exit_code"] = engine.stop(timeout=60.0)
        except subprocess.TimeoutExpired:
            record["exit_code"] = "killed after 60 s"
        record["stop_seconds"] = round(time.perf_counter() - began, 3)
        record.update(findings(engine.log_path))


# -- the engine log --------------------------------------------------------------------------

def read_log(path: Path) -> list[str] | None:
    """The lines of a log (the full log, not the tail); ``None`` when it cannot be read."""
    try:
        return path.read_text().splitlines()
    except OSError:
        return None


def alarm_lines(lines: Iterable[str]) -> list[str]:
    """Log lines at WARNING or above, and tracebacks."""
    return [line for line in lines if LOG_ALARM.search(line)]


def line_kinds(lines: Iterable[str]) -> dict[str, int]:
    """Log lines grouped by message with timestamps, ids and numbers blanked out; the 20 most common.

    Under load one cause repeats thousands of times; the kinds and their counts are the finding.
    """
    kinds: Counter[str] = Counter()
    for line in lines:
        text = re.sub(r"^\S+ \S+ ", "", line)  # the asctime
        text = re.sub(r"[0-9a-f]{16,}|msg_\w+", "<id>", text)
        kinds[re.sub(r"\d+(\.\d+)?", "<n>", text)[:200]] += 1
    return dict(kinds.most_common(20))


def kind_notes(kinds: dict[str, int]) -> list[str]:
    """Grouped log lines as report lines, most common first."""
    return [f"engine log x{count}: {kind}" for kind, count in kinds.items()]


# -- the contact-center simulator ------------------------------------------------------------

def simulator_toml(time_scale: float, agents: int, shorten: float = 1.0) -> str:
    """A fast simulator: every dial answers, agents are plentiful, calls are short.

    ``shorten`` divides every call phase: at time scale 1 and ``shorten=S`` calls last as long in
    real time as at time scale S, while every engine time stays a wall-clock time.
    """
    ring, treatment, route, handle = (seconds / shorten for seconds in (RING, TREATMENT, ROUTE, HANDLE))
    return (f"time_scale = {time_scale}\nring_seconds = {ring}\ntreatment_seconds = {treatment}\n"
            f"route_seconds = {route}\ndefault_handle_seconds = {handle}\ndefault_outcome = \"answer\"\n"
            f"seed = 7\ndial_rules = []\n"
            f"[queues.{QUEUE}]\nagents = {agents}\nhandle_seconds = {handle}\nhandle_jitter = 0.0\n")


# -- report ----------------------------------------------------------------------------------

def ratio(numerator: float | None, denominator: float | None, digits: int = 4) -> float | None:
    """``numerator / denominator`` rounded, or ``None`` when either is missing or zero."""
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, digits)


def mib(value: float | None) -> str:
    """Bytes as MiB text."""
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


async def bench_main(prefix: str, keep: bool, run: Callable[[Path], Awaitable[dict[str, Any]]],
                     report: Callable[[dict[str, Any]], None],
                     notes: Callable[[dict[str, Any]], Iterable[str]]) -> int:
    """Run in a fresh work folder (removed unless ``keep``), print the report, then ``notes``
    (engine log findings) and the problems on stderr, and the JSON line last; 1 on any problem.

    ``run`` gets the work folder and returns the result, which holds ``problems`` and ``ok``.
    """
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        result = await run(workdir)
    finally:
        if keep:
            print(f"work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(result)
    for note in notes(result):
        print(note, file=sys.stderr)
    for problem in result["problems"]:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    print(json.dumps(result))
    return 0 if result["ok"] else 1


def run_result(figures: dict[str, Any], headline: dict[str, Any], record: dict[str, Any], quiet: dict[str, Any],
               settings: dict[str, Any], began: float, problems: list[str]) -> dict[str, Any]:
    """What a benchmark run that drove one engine process returns: its figures with the engine's
    exit (a SIGTERM that did not end with 0 is a problem), the machine, the settings and versions."""
    if record.get("exit_code") != 0:
        problems.append(f"engine exited with {record.get('exit_code')} on SIGTERM")
    return {
        "headline": headline, **figures, "engine_process": record, "machine": quiet, "settings": settings,
        "duration_seconds": round(time.perf_counter() - began, 1), "python": platform.python_version(),
        "aiohttp": aiohttp.__version__, "cpus": os.cpu_count(), "problems": problems, "ok": not problems,
    }


def print_engine_stop(result: dict[str, Any], effect: str, extra: str = "") -> None:
    """The engine's stop and log, and a warning when the machine was busy (``effect``: what that
    did to the figures), at the end of a benchmark's report."""
    rec, h = result["engine_process"], result["headline"]
    print(f"  engine stop: exit {rec.get('exit_code')} in {rec.get('stop_seconds')} s; log {rec.get('log_lines')} "
          f"lines {rec.get('log_levels')}, {rec.get('log_unusual_count')} beyond start/stop{extra}")
    if h["machine_busy"]:
        print(f"WARNING: the machine was busy (start quiet: {result['machine']['quiet_at_start']}; disturbed: "
              f"{h['disturbed_parts']}); {effect}")
