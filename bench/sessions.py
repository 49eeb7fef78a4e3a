"""Session-API benchmark: a real engine process, measured through its real HTTP API.

Run from the repository root as ``python bench/sessions.py`` (``--quick`` for a smoke
run). In one run it measures:

* sessions started per second (``POST /scxml/session/start``) with persistence on and
  off, and events per second (``POST /scxml/session/{id}/event/{name}``) likewise; both
  answers come only once the work is committed, so with persistence on these are
  durable rates (group commit: the client keeps many requests in flight);
* the resident memory of an engine holding many idle persisted sessions (each waiting
  on a one-hour delayed send), and of the same process before they were started, so
  bytes per session can be derived;
* the request rate of a bare aiohttp server under the same client and concurrency: the
  engine's rates as a fraction of it are comparable across machines.

Every figure is checked: any answer but 200 fails the run, and after the event phase a
sample of sessions is queried to prove its counter equals the events it was sent.
The client shares the machine with the server, so the client's CPU is reported too.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.httpload import LoadResult, cpu_seconds, drive, memory_bytes, wait_healthy, wait_quiet  # noqa: E402
from tests.support.engine_process import CLIENT_KEY, EngineProcess, free_port  # noqa: E402

FLOW = "counter"
EVENT = "bump"
#: One counter per session, and a pending one-hour timer: an idle session holds a timer.
COUNTER_FLOW = """\
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="idle">
 <datamodel><data id="count" expr="0"/></datamodel>
 <state id="idle">
  <onentry><send event="timeout" delay="3600s"/></onentry>
  <transition event="bump"><assign location="count" expr="count + 1"/></transition>
 </state>
</scxml>
"""
START_BODY = json.dumps({"src": FLOW, "customer": "bench"}).encode()
EVENT_BODY = json.dumps({"source": "bench"}).encode()
HEADERS = {"x-api-key": CLIENT_KEY, "content-type": "application/json"}
#: Engine log lines worth reporting: anything at WARNING or above, and tracebacks.
LOG_ALARM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


@dataclass(frozen=True)
class Settings:
    """Counts and concurrency of one run."""

    quick: bool
    starts: int
    events: int
    idle: int
    reference: int
    concurrency: int
    warmup: int
    verify: int
    keep: bool


class Problems(list[str]):
    """Everything that makes the figures untrustworthy; a non-empty list fails the run."""


# -- requests ------------------------------------------------------------------------------

async def post(client: aiohttp.ClientSession, url: str, body: bytes,
               failures: list[str]) -> tuple[int, bytes]:
    """POST JSON and return status and body; a non-200 answer is noted with its text."""
    async with client.post(url, data=body, headers=HEADERS) as response:
        raw = await response.read()
        if response.status != 200:
            failures.append(f"{response.status} {url}: {raw[:200]!r}")
        return response.status, raw


async def start_sessions(client: aiohttp.ClientSession, base: str, count: int,
                         concurrency: int) -> tuple[LoadResult, list[str]]:
    """Start ``count`` counter sessions; returns the load figures and the session ids."""
    ids: list[str] = [""] * count
    failures: list[str] = []
    url = f"{base}/scxml/session/start"

    async def one(index: int) -> int:
        status, raw = await post(client, url, START_BODY, failures)
        if status == 200:
            answer = json.loads(raw)
            ids[index] = answer["sessionid"]
            if answer.get("status") != "running":
                failures.append(f"session {answer['sessionid']} started as {answer.get('status')!r}")
        return status

    result = await drive(count, concurrency, one)
    result.failures.extend(failures)
    return result, [sid for sid in ids if sid]


async def send_events(client: aiohttp.ClientSession, base: str, ids: list[str], count: int,
                      concurrency: int) -> tuple[LoadResult, list[int]]:
    """Send ``count`` events round-robin over ``ids``; returns figures and per-session counts.

    Round-robin over many sessions: consecutive requests in flight hit different
    sessions, as real traffic would.
    """
    sent = [0] * len(ids)
    failures: list[str] = []

    async def one(index: int) -> int:
        target = index % len(ids)
        status, _ = await post(client, f"{base}/scxml/session/{ids[target]}/event/{EVENT}", EVENT_BODY, failures)
        if status == 200:
            sent[target] += 1
        return status

    result = await drive(count, concurrency, one)
    result.failures.extend(failures)
    return result, sent


async def query(client: aiohttp.ClientSession, base: str, sid: str) -> dict[str, Any]:
    """The engine's view of one session."""
    async with client.get(f"{base}/scxml/session/{sid}/query", headers=HEADERS) as response:
        if response.status != 200:
            raise RuntimeError(f"query {sid}: {response.status} {await response.text()}")
        return await response.json()


async def live_sessions(client: aiohttp.ClientSession, base: str) -> int:
    """Sessions the engine holds in memory, from ``/health``."""
    async with client.get(f"{base}/health") as response:
        return int((await response.json())["sessions"])


def sample(count: int, size: int) -> list[int]:
    """``size`` indices spread evenly over ``range(count)``, first and last included."""
    if count <= size:
        return list(range(count))
    return sorted({round(i * (count - 1) / (size - 1)) for i in range(size)})


async def verify_counters(client: aiohttp.ClientSession, base: str, ids: list[str], sent: list[int],
                          size: int) -> list[str]:
    """Check that sampled sessions counted exactly the events acknowledged to them."""
    problems = []
    for index in sample(len(ids), size):
        found = await query(client, base, ids[index])
        count = found.get("datamodel", {}).get("count")
        if count != sent[index] or found.get("status") != "running":
            problems.append(f"session {ids[index]}: count {count!r} != {sent[index]} events sent, "
                            f"status {found.get('status')!r}")
    return problems


# -- processes -----------------------------------------------------------------------------

def write_flows(folder: Path) -> Path:
    """Write the benchmark flow into a fresh flows folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{FLOW}.scxml").write_text(COUNTER_FLOW)
    return folder


def log_alarms(engine: EngineProcess) -> list[str]:
    """Lines of the engine log at WARNING or above (the full log, not the tail)."""
    try:
        lines = engine.log_path.read_text().splitlines()
    except OSError:
        return []
    return [line for line in lines if LOG_ALARM.search(line)]


@asynccontextmanager
async def engine_running(workdir: Path, name: str, persistence: bool,
                         record: dict[str, Any]) -> AsyncIterator[EngineProcess]:
    """A fresh engine with its own data folder; on exit stops it gracefully and notes
    how long shutdown took and what the log complained about."""
    engine = EngineProcess(workdir / name, write_flows(workdir / "flows"),
                           persistence="true" if persistence else "false")
    await engine.start()
    try:
        yield engine
    finally:
        began = time.perf_counter()
        record["exit_code"] = engine.stop(timeout=60.0)
        record["stop_seconds"] = round(time.perf_counter() - began, 3)
        record["log_alarms"] = log_alarms(engine)[:20]
        record["log_alarm_count"] = len(log_alarms(engine))


@asynccontextmanager
async def bare_server(client: aiohttp.ClientSession, workdir: Path) -> AsyncIterator[tuple[str, int]]:
    """The reference server as a subprocess on loopback; yields its URL and pid."""
    port = free_port()
    log = open(workdir / "bare_server.log", "wb")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "bare_server.py"), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    log.close()
    try:
        await wait_healthy(client, f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


# -- phases --------------------------------------------------------------------------------

@dataclass
class Cpu:
    """CPU used by the server process and by this client over one phase."""

    server_pid: int
    began_server: float = 0.0
    began_client: float = 0.0
    began_wall: float = 0.0

    def __post_init__(self) -> None:
        self.began_server = cpu_seconds(self.server_pid)
        self.began_client = time.process_time()
        self.began_wall = time.perf_counter()

    def figures(self, requests: int) -> dict[str, float]:
        """CPU share of each side (1.0 = one core busy) and server CPU per request."""
        wall = time.perf_counter() - self.began_wall
        server = cpu_seconds(self.server_pid) - self.began_server
        client = time.process_time() - self.began_client
        return {
            "server_cpu_share": round(server / wall, 3), "client_cpu_share": round(client / wall, 3),
            "server_cpu_ms_per_request": round(1000 * server / max(1, requests), 4),
        }


def phase(result: LoadResult, cpu: Cpu, problems: Problems, label: str) -> dict[str, Any]:
    """Figures of one timed phase; its failed requests become problems."""
    if result.ok != result.requests:
        problems.append(f"{label}: {result.requests - result.ok} of {result.requests} requests failed: "
                        f"{result.failures[:3]}")
    return {**result.summary(), **cpu.figures(result.requests)}


async def measure_reference(client: aiohttp.ClientSession, settings: Settings, workdir: Path,
                            problems: Problems) -> dict[str, Any]:
    """Request rate of the bare server, after a warm-up that opens every connection."""
    async with bare_server(client, workdir) as (base, pid):
        url = f"{base}/echo"
        failures: list[str] = []

        async def one(_: int) -> int:
            return (await post(client, url, START_BODY, failures))[0]

        await drive(settings.warmup, settings.concurrency, one)
        cpu = Cpu(pid)
        result = await drive(settings.reference, settings.concurrency, one)
        result.failures.extend(failures)
        return phase(result, cpu, problems, "reference")


async def measure_mode(client: aiohttp.ClientSession, settings: Settings, workdir: Path, persistence: bool,
                       problems: Problems) -> dict[str, Any]:
    """Start rate, then event rate over those sessions, then the counter check."""
    label = "persistence on" if persistence else "persistence off"
    record: dict[str, Any] = {}
    async with engine_running(workdir, f"engine-{'on' if persistence else 'off'}", persistence,
                              record) as engine:
        assert engine.proc is not None
        pid = engine.proc.pid
        _, warm_ids = await start_sessions(client, engine.url, settings.warmup, settings.concurrency)
        await send_events(client, engine.url, warm_ids, settings.warmup, settings.concurrency)

        cpu = Cpu(pid)
        started, ids = await start_sessions(client, engine.url, settings.starts, settings.concurrency)
        record["start"] = phase(started, cpu, problems, f"{label} start")
        if not ids:
            problems.append(f"{label}: no session started")
            return record

        cpu = Cpu(pid)
        events, sent = await send_events(client, engine.url, ids, settings.events, settings.concurrency)
        record["event"] = phase(events, cpu, problems, f"{label} event")

        mismatches = await verify_counters(client, engine.url, ids, sent, settings.verify)
        problems.extend(f"{label}: {m}" for m in mismatches)
        record["verified_sessions"] = len(sample(len(ids), settings.verify))
        live = await live_sessions(client, engine.url)
        expected = len(warm_ids) + len(ids)
        if live != expected:
            problems.append(f"{label}: engine holds {live} sessions, expected {expected}")
        record["live_sessions"] = live
        record["rss_bytes_end"] = memory_bytes(pid)["VmRSS"]
    return record


async def measure_memory(client: aiohttp.ClientSession, settings: Settings, workdir: Path,
                         problems: Problems) -> dict[str, Any]:
    """RSS of a persisting engine before and after ``settings.idle`` idle sessions.

    The baseline is taken after a warm-up (flow compiled, code paths and the database
    connection exercised), so the difference is the sessions and not one-time costs.
    """
    record: dict[str, Any] = {}
    async with engine_running(workdir, "engine-memory", True, record) as engine:
        assert engine.proc is not None
        pid = engine.proc.pid
        _, warm_ids = await start_sessions(client, engine.url, settings.warmup, settings.concurrency)
        record["quiet_wait_before_s"] = round(await wait_quiet(pid), 2)
        before = memory_bytes(pid)

        cpu = Cpu(pid)
        started, ids = await start_sessions(client, engine.url, settings.idle, settings.concurrency)
        record["start"] = phase(started, cpu, problems, "idle sessions start")
        record["quiet_wait_after_s"] = round(await wait_quiet(pid), 2)
        after = memory_bytes(pid)

        live = await live_sessions(client, engine.url)
        if live != len(warm_ids) + len(ids):
            problems.append(f"memory: engine holds {live} sessions, expected {len(warm_ids) + len(ids)}")
        for index in sample(len(ids), min(settings.verify, 10)):
            status = (await query(client, engine.url, ids[index])).get("status")
            if status != "running":
                problems.append(f"memory: idle session {ids[index]} is {status!r}, not running")
        record.update({
            "warmup_sessions": len(warm_ids), "idle_sessions": len(ids), "live_sessions": live,
            "rss_bytes_before": before["VmRSS"], "hwm_bytes_before": before["VmHWM"],
            "rss_bytes_after": after["VmRSS"], "hwm_bytes_after": after["VmHWM"],
            "rss_bytes_per_session": round((after["VmRSS"] - before["VmRSS"]) / max(1, len(ids))),
        })
    return record


# -- report --------------------------------------------------------------------------------

def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` rounded, or ``None`` when either is missing or zero."""
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def rate_of(record: dict[str, Any], kind: str) -> float | None:
    """The rate of a phase, or ``None`` when it did not run."""
    return record.get(kind, {}).get("rate")


def headline(reference: dict[str, Any], off: dict[str, Any], on: dict[str, Any],
             memory: dict[str, Any]) -> dict[str, Any]:
    """The figures a reader wants first: rates, ratios, memory."""
    ref = reference.get("rate")
    figures: dict[str, Any] = {"reference_rate": ref}
    for kind in ("start", "event"):
        rate_on, rate_off = rate_of(on, kind), rate_of(off, kind)
        figures.update({
            f"{kind}_rate_persistence_on": rate_on, f"{kind}_rate_persistence_off": rate_off,
            f"{kind}_ratio_on_off": ratio(rate_on, rate_off),
            f"{kind}_on_vs_reference": ratio(rate_on, ref), f"{kind}_off_vs_reference": ratio(rate_off, ref),
        })
    figures.update({key: memory.get(key) for key in (
        "idle_sessions", "rss_bytes_before", "rss_bytes_after", "hwm_bytes_after", "rss_bytes_per_session")})
    return figures


def mib(value: float | None) -> str:
    """Bytes as MiB text."""
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def print_table(result: dict[str, Any]) -> None:
    """A readable table of the rates, ratios and memory figures."""
    s, h = result["settings"], result["headline"]
    mode = "  [quick]" if s["quick"] else ""
    print(f"session API benchmark, concurrency {s['concurrency']}, Python {result['python']}, "
          f"{result['cpus']} CPUs{mode}")
    print(f"{'':<22}{'on/s':>10}{'off/s':>10}{'on/off':>8}{'on/ref':>8}{'off/ref':>8}"
          f"{'p50 on ms':>11}{'p99 on ms':>11}")
    for kind, label in (("start", f"session starts x{s['starts']}"), ("event", f"events x{s['events']}")):
        on = result["persistence_on"].get(kind, {})
        cells = [h[f"{kind}_rate_persistence_on"], h[f"{kind}_rate_persistence_off"]]
        print(f"{label:<22}" + "".join(f"{c or 0:>10.0f}" for c in cells)
              + "".join(f"{(h[k] or 0):>8.3f}" for k in (f"{kind}_ratio_on_off", f"{kind}_on_vs_reference",
                                                           f"{kind}_off_vs_reference"))
              + f"{on.get('latency_ms_p50', 0):>11.1f}{on.get('latency_ms_p99', 0):>11.1f}")
    print(f"{'bare aiohttp x' + str(s['reference']):<22}{h['reference_rate'] or 0:>10.0f}  requests/s (reference)")
    memory = result["memory"]
    print(f"memory, {memory.get('idle_sessions', 0)} idle persisted sessions: "
          f"RSS before {mib(memory.get('rss_bytes_before'))}, after {mib(memory.get('rss_bytes_after'))}, "
          f"HWM {mib(memory.get('hwm_bytes_after'))}, {memory.get('rss_bytes_per_session', 0):,} bytes/session; "
          f"started at {memory.get('start', {}).get('rate', 0):.0f}/s")
    for name in ("persistence_off", "persistence_on", "memory"):
        record = result[name]
        shares = [f"{k} server CPU {record[k]['server_cpu_share']:.2f}, client {record[k]['client_cpu_share']:.2f}"
                  for k in ("start", "event") if k in record]
        print(f"  {name}: {'; '.join(shares)}; stop {record.get('stop_seconds')} s, "
              f"{record.get('log_alarm_count', 0)} log alarms")


def settings_from(argv: list[str] | None) -> Settings:
    """Parse the CLI; ``--quick`` shrinks every count not given explicitly."""
    parser = argparse.ArgumentParser(description="session-API benchmark (real engine, real HTTP)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, a few seconds")
    parser.add_argument("--starts", type=int, help="timed session starts per mode (default 6000, quick 500)")
    parser.add_argument("--events", type=int, help="timed events per mode (default 12000, quick 1000)")
    parser.add_argument("--idle", type=int, help="idle persisted sessions for memory (default 10000, quick 500)")
    parser.add_argument("--reference", type=int, help="bare-server requests (default 20000, quick 2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--warmup", type=int, help="untimed requests before each phase (default 2 x concurrency)")
    parser.add_argument("--verify", type=int, default=50, help="sessions queried to check counters (default 50)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (engine logs, databases)")
    args = parser.parse_args(argv)

    def pick(value: int | None, full: int, quick: int) -> int:
        return value if value is not None else (quick if args.quick else full)

    return Settings(
        quick=args.quick, starts=pick(args.starts, 6000, 500), events=pick(args.events, 12000, 1000),
        idle=pick(args.idle, 10_000, 500), reference=pick(args.reference, 20000, 2000),
        concurrency=max(1, args.concurrency), warmup=pick(args.warmup, 2 * args.concurrency, 2 * args.concurrency),
        verify=max(2, args.verify), keep=args.keep,
    )


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Every phase against its own process, sharing one client session."""
    problems = Problems()
    began = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=settings.concurrency + 16)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        reference = await measure_reference(client, settings, workdir, problems)
        off = await measure_mode(client, settings, workdir, False, problems)
        on = await measure_mode(client, settings, workdir, True, problems)
        memory = await measure_memory(client, settings, workdir, problems)
    return {
        "headline": headline(reference, off, on, memory),
        "reference": reference, "persistence_off": off, "persistence_on": on, "memory": memory,
        "settings": asdict(settings), "duration_seconds": round(time.perf_counter() - began, 1),
        "python": platform.python_version(), "aiohttp": aiohttp.__version__, "cpus": os.cpu_count(),
        "machine": platform.machine(), "problems": list(problems), "ok": not problems,
    }


async def main(argv: list[str] | None = None) -> int:
    """Run, print the table, problems on stderr, and the JSON line last; 1 on any problem."""
    settings = settings_from(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
    try:
        result = await run(settings, workdir)
    finally:
        if settings.keep:
            print(f"work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(result)
    for name in ("persistence_off", "persistence_on", "memory"):
        for line in result[name].get("log_alarms", []):
            print(f"engine log ({name}): {line}", file=sys.stderr)
    for problem in result["problems"]:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    sys.stdout.flush()
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
