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

The rate phases run in interleaved rounds against the bare server and both engines,
all up side by side; the best round is the headline (as ``timeit`` reasons: the least
disturbed one), the median and every round are in the JSON. Memory is measured on a
fresh engine afterwards. A full run takes about a minute on two cores.

Every figure is checked: any answer but 200 fails the run, and after the event phase a
sample of sessions is queried to prove its counter equals the events it was sent.
The client shares the machine with the server, so the client's CPU is reported too.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import statistics
import sys
import time
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    DISTURBED,
    HEADERS,
    Problems,
    alarm_lines,
    bare_server,
    bench_main,
    managed_engine,
    mib,
    ratio,
    read_log,
)
from bench.httpload import Cpu, LoadResult, drive, memory_bytes, wait_quiet  # noqa: E402
from tests.support.engine_process import EngineProcess  # noqa: E402

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


@dataclass(frozen=True)
class Settings:
    """Counts and concurrency of one run."""

    quick: bool
    starts: int
    events: int
    idle: int
    reference: int
    rounds: int
    concurrency: int
    warmup: int
    verify: int
    keep: bool


# -- requests ------------------------------------------------------------------------------

async def post(client: aiohttp.ClientSession, url: str, body: bytes,
               failures: list[str]) -> tuple[int, bytes]:
    """POST JSON and return status and body; a non-200 answer is noted with its text."""
    async with client.post(url, data=body, headers=HEADERS) as response:
        raw = await response.read()
        if response.status != 200:
            failures.append(f"{response.status} {url}: {raw[:200].decode(errors='replace')}")
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
                      concurrency: int, sent: dict[str, int]) -> LoadResult:
    """Send ``count`` events round-robin over ``ids``, adding each acknowledged one to ``sent``.

    Round-robin over many sessions: consecutive requests in flight hit different
    sessions, as real traffic would.
    """
    failures: list[str] = []

    async def one(index: int) -> int:
        sid = ids[index % len(ids)]
        status, _ = await post(client, f"{base}/scxml/session/{sid}/event/{EVENT}", EVENT_BODY, failures)
        if status == 200:
            sent[sid] = sent.get(sid, 0) + 1
        return status

    result = await drive(count, concurrency, one)
    result.failures.extend(failures)
    return result


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


async def verify_counters(client: aiohttp.ClientSession, base: str, ids: list[str], sent: dict[str, int],
                          size: int) -> list[str]:
    """Check that sampled sessions counted exactly the events acknowledged to them."""
    problems = []
    for index in sample(len(ids), size):
        sid = ids[index]
        found = await query(client, base, sid)
        count = found.get("datamodel", {}).get("count")
        if count != sent.get(sid, 0) or found.get("status") != "running":
            problems.append(f"session {sid}: count {count!r} != {sent.get(sid, 0)} events sent, "
                            f"status {found.get('status')!r}")
    return problems


# -- processes -----------------------------------------------------------------------------

def write_flows(folder: Path) -> Path:
    """Write the benchmark flow into a fresh flows folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{FLOW}.scxml").write_text(COUNTER_FLOW)
    return folder


def log_alarms(path: Path) -> dict[str, Any]:
    """The engine log's lines at WARNING or above (the first 20) and their count."""
    alarms = alarm_lines(read_log(path) or [])
    return {"log_alarms": alarms[:20], "log_alarm_count": len(alarms)}


def engine_running(workdir: Path, name: str, persistence: bool,
                   record: dict[str, Any]) -> AbstractAsyncContextManager[EngineProcess]:
    """A fresh engine with its own data folder; on exit stops it gracefully and notes
    how long shutdown took and what the log complained about."""
    process = EngineProcess(workdir / name, write_flows(workdir / "flows"),
                            persistence="true" if persistence else "false")
    return managed_engine(process, record, log_alarms)


# -- phases --------------------------------------------------------------------------------

def phase(result: LoadResult, cpu: Cpu, problems: Problems, label: str) -> dict[str, Any]:
    """Figures of one timed phase: CPU shares (1.0 = one core) of server, client, other
    processes and the hypervisor, server CPU per request; its failed requests become problems."""
    if result.ok != result.requests or result.failures:
        problems.append(f"{label}: {result.requests - result.ok} of {result.requests} requests failed: "
                        + "; ".join(result.failures[:3]))
    use = cpu.used()
    return {**result.summary(), **use.shares(),
            "server_cpu_ms_per_request": round(1000 * use.seconds["server"] / max(1, result.requests), 4)}


@dataclass
class Target:
    """A server under measurement and what was done to it, round after round."""

    label: str
    base: str
    pid: int
    ids: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    warm_ids: list[str] = field(default_factory=list)
    rounds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, kind: str, figures: dict[str, Any]) -> None:
        """Keep one round's figures."""
        self.rounds.setdefault(kind, []).append(figures)

    def summary(self) -> dict[str, Any]:
        """Per kind, the best round in full plus every round's rate and their median.

        The best round is the least disturbed one (as ``timeit`` reasons); the median
        and the list show how noisy the machine was.
        """
        out: dict[str, Any] = {}
        for kind, rounds in self.rounds.items():
            rates = [r["rate"] for r in rounds]
            best = max(rounds, key=lambda r: r["rate"])
            out[kind] = {**best, "rate_median": round(statistics.median(rates), 1), "rates": rates,
                         "steal_shares": [r["steal_share"] for r in rounds],
                         "foreign_cpu_shares": [r["foreign_cpu_share"] for r in rounds]}
        return out


async def reference_round(client: aiohttp.ClientSession, target: Target, count: int, concurrency: int,
                          problems: Problems) -> None:
    """One timed batch against the bare server, with the engine's start body."""
    url = f"{target.base}/echo"
    failures: list[str] = []

    async def one(_: int) -> int:
        return (await post(client, url, START_BODY, failures))[0]

    cpu = Cpu({"server": target.pid})
    result = await drive(count, concurrency, one)
    result.failures.extend(failures)
    target.add("request", phase(result, cpu, problems, target.label))


async def start_round(client: aiohttp.ClientSession, target: Target, count: int, concurrency: int,
                      problems: Problems) -> None:
    """One timed batch of session starts; the new sessions join the event targets."""
    cpu = Cpu({"server": target.pid})
    result, ids = await start_sessions(client, target.base, count, concurrency)
    target.add("start", phase(result, cpu, problems, f"{target.label} start"))
    target.ids.extend(ids)


async def event_round(client: aiohttp.ClientSession, target: Target, count: int, concurrency: int,
                      problems: Problems) -> None:
    """One timed batch of events over every session started in the timed rounds."""
    if not target.ids:
        problems.append(f"{target.label}: no session to send events to")
        return
    cpu = Cpu({"server": target.pid})
    result = await send_events(client, target.base, target.ids, count, concurrency, target.sent)
    target.add("event", phase(result, cpu, problems, f"{target.label} event"))


async def warm_up(client: aiohttp.ClientSession, target: Target, settings: Settings) -> None:
    """Untimed starts and events: connections opened, flow compiled, code paths hot."""
    _, target.warm_ids = await start_sessions(client, target.base, settings.warmup, settings.concurrency)
    if target.warm_ids:
        await send_events(client, target.base, target.warm_ids, settings.warmup, settings.concurrency, {})


async def check_engine(client: aiohttp.ClientSession, target: Target, settings: Settings,
                       problems: Problems) -> dict[str, Any]:
    """Counters of sampled sessions, and the number of sessions the engine holds."""
    mismatches = await verify_counters(client, target.base, target.ids, target.sent, settings.verify)
    problems.extend(f"{target.label}: {m}" for m in mismatches)
    live = await live_sessions(client, target.base)
    expected = len(target.warm_ids) + len(target.ids)
    if live != expected:
        problems.append(f"{target.label}: engine holds {live} sessions, expected {expected}")
    return {"verified_sessions": len(sample(len(target.ids), settings.verify)), "live_sessions": live,
            "sessions_started": len(target.ids), "events_acknowledged": sum(target.sent.values()),
            "rss_bytes_end": memory_bytes(target.pid)["VmRSS"]}


async def measure_rates(client: aiohttp.ClientSession, settings: Settings, workdir: Path,
                        problems: Problems) -> dict[str, dict[str, Any]]:
    """Start and event rates with persistence off and on, and the bare server's rate.

    All three servers run side by side and the rounds interleave them (alternating
    which engine goes first), so machine noise is spread over every figure instead of
    landing on one of them.
    """
    records: dict[str, dict[str, Any]] = {"off": {}, "on": {}}
    async with AsyncExitStack() as stack:
        ref_base, ref_pid = await stack.enter_async_context(bare_server(client, workdir))
        reference = Target("reference", ref_base, ref_pid)
        engines = []
        for mode in ("off", "on"):
            engine = await stack.enter_async_context(
                engine_running(workdir, f"engine-{mode}", mode == "on", records[mode]))
            assert engine.proc is not None
            engines.append(Target(f"persistence {mode}", engine.url, engine.proc.pid))
        await reference_round(client, reference, settings.warmup, settings.concurrency, Problems())
        reference.rounds.clear()
        for target in engines:
            await warm_up(client, target, settings)
        for number in range(settings.rounds):
            order = engines if number % 2 == 0 else engines[::-1]
            await reference_round(client, reference, settings.reference, settings.concurrency, problems)
            for target in order:
                await start_round(client, target, settings.starts, settings.concurrency, problems)
            for target in order:
                await event_round(client, target, settings.events, settings.concurrency, problems)
        checks = [await check_engine(client, target, settings, problems) for target in engines]
    return {
        "reference": reference.summary().get("request", {}),
        "persistence_off": {**engines[0].summary(), **checks[0], **records["off"]},
        "persistence_on": {**engines[1].summary(), **checks[1], **records["on"]},
    }


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

        cpu = Cpu({"server": pid})
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

def rate_of(record: dict[str, Any], kind: str, key: str = "rate") -> float | None:
    """The best (or median) rate of a phase, or ``None`` when it did not run."""
    return record.get(kind, {}).get(key)


def headline(reference: dict[str, Any], off: dict[str, Any], on: dict[str, Any],
             memory: dict[str, Any]) -> dict[str, Any]:
    """The figures a reader wants first: best-round rates and their ratios, medians, memory."""
    ref = reference.get("rate")
    figures: dict[str, Any] = {"reference_rate": ref, "reference_rate_median": reference.get("rate_median")}
    for kind in ("start", "event"):
        rate_on, rate_off = rate_of(on, kind), rate_of(off, kind)
        figures.update({
            f"{kind}_rate_persistence_on": rate_on, f"{kind}_rate_persistence_off": rate_off,
            f"{kind}_ratio_on_off": ratio(rate_on, rate_off, 3),
            f"{kind}_on_vs_reference": ratio(rate_on, ref, 3), f"{kind}_off_vs_reference": ratio(rate_off, ref, 3),
            f"{kind}_rate_persistence_on_median": rate_of(on, kind, "rate_median"),
            f"{kind}_rate_persistence_off_median": rate_of(off, kind, "rate_median"),
        })
    figures.update({key: memory.get(key) for key in (
        "idle_sessions", "rss_bytes_before", "hwm_bytes_before", "rss_bytes_after", "hwm_bytes_after",
        "rss_bytes_per_session")})
    return figures


def cells(values: list[float | None], width: int, digits: int) -> str:
    """Right-aligned numbers; a dash for a missing one."""
    return "".join(f"{'-':>{width}}" if v is None else f"{v:>{width}.{digits}f}" for v in values)


def best_rounds(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rounds the headline rates come from: the best of the reference and of each engine phase."""
    return [result["reference"]] + [result[name].get(kind, {}) for name in ("persistence_off", "persistence_on")
                                    for kind in ("start", "event")]


def disturbance(result: dict[str, Any]) -> dict[str, float]:
    """How much others used the machine: in the headline rounds, and in any timed round."""
    best = best_rounds(result)
    return {
        "foreign_cpu_share_headline_max": max((r.get("foreign_cpu_share", 0.0) for r in best), default=0.0),
        "steal_share_headline_max": max((r.get("steal_share", 0.0) for r in best), default=0.0),
        "foreign_cpu_share_any_max": max((x for r in best for x in r.get("foreign_cpu_shares", [])), default=0.0),
        "steal_share_any_max": max((x for r in best for x in r.get("steal_shares", [])), default=0.0),
    }


def print_table(result: dict[str, Any]) -> None:
    """A readable table: best-round rates, ratios, latencies, medians; then memory and CPU."""
    s, h = result["settings"], result["headline"]
    print(f"session API benchmark: concurrency {s['concurrency']}, best of {s['rounds']} interleaved rounds, "
          f"Python {result['python']}, {result['cpus']} CPUs{'  [quick]' if s['quick'] else ''}")
    print(f"{'per second':<24}{'on':>9}{'off':>9}{'on/off':>8}{'on/ref':>8}{'off/ref':>8}"
          f"{'p50/p99/max ms on':>18}{'median on':>11}{'median off':>11}")
    for kind, label in (("start", f"session starts x{s['starts']}"), ("event", f"events x{s['events']}")):
        on = result["persistence_on"].get(kind, {})
        latency = "/".join(f"{on.get(f'latency_ms_{q}', 0):.0f}" for q in ("p50", "p99", "max"))
        print(f"{label:<24}"
              + cells([h[f"{kind}_rate_persistence_on"], h[f"{kind}_rate_persistence_off"]], 9, 0)
              + cells([h[f"{kind}_ratio_on_off"], h[f"{kind}_on_vs_reference"], h[f"{kind}_off_vs_reference"]], 8, 3)
              + f"{latency:>18}"
              + cells([h[f"{kind}_rate_persistence_on_median"], h[f"{kind}_rate_persistence_off_median"]], 11, 0))
    ref = result["reference"]
    print(f"{'bare aiohttp x' + str(s['reference']):<24}" + cells([h["reference_rate"]], 9, 0)
          + f"   reference; median {ref.get('rate_median', 0):.0f}, "
          f"p50/p99/max {ref.get('latency_ms_p50', 0):.0f}/{ref.get('latency_ms_p99', 0):.0f}"
          f"/{ref.get('latency_ms_max', 0):.0f} ms")
    memory = result["memory"]
    print(f"memory, {memory.get('idle_sessions', 0)} idle persisted sessions: "
          f"RSS {mib(memory.get('rss_bytes_before'))} -> {mib(memory.get('rss_bytes_after'))} "
          f"(HWM {mib(memory.get('hwm_bytes_after'))}), {memory.get('rss_bytes_per_session', 0):,} bytes/session; "
          f"started at {memory.get('start', {}).get('rate', 0):.0f}/s")
    print("CPU share during the best round (1.0 = one core), server/client:")
    for name in ("reference", "persistence_off", "persistence_on", "memory"):
        record = result[name]
        shares = [f"{kind} {record[kind]['server_cpu_share']:.2f}/{record[kind]['client_cpu_share']:.2f}"
                  for kind in ("start", "event") if kind in record]
        if name == "reference":
            shares = [f"request {record.get('server_cpu_share', 0):.2f}/{record.get('client_cpu_share', 0):.2f}"]
        extra = "" if name == "reference" else (f"; graceful stop {record.get('stop_seconds')} s, "
                                                f"{record.get('log_alarm_count', 0)} log alarms")
        print(f"  {name:<16} {', '.join(shares)}{extra}")
    d = result["disturbance"]
    print(f"others' load (share of one core, max): other processes {d['foreign_cpu_share_headline_max']:.2f} "
          f"in the headline rounds, {d['foreign_cpu_share_any_max']:.2f} in any round; hypervisor steal "
          f"{d['steal_share_headline_max']:.2f} / {d['steal_share_any_max']:.2f}")
    if max(d["foreign_cpu_share_headline_max"], d["steal_share_headline_max"]) > DISTURBED:
        print("WARNING: the machine was busy with other work during headline rounds; the rates are low")


def settings_from(argv: list[str] | None) -> Settings:
    """Parse the CLI; ``--quick`` shrinks every count not given explicitly."""
    parser = argparse.ArgumentParser(description="session-API benchmark (real engine, real HTTP)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, a few seconds")
    parser.add_argument("--rounds", type=int, help="interleaved timed rounds, best kept (default 5, quick 1)")
    parser.add_argument("--starts", type=int, help="session starts per round and mode (default 4000, quick 500)")
    parser.add_argument("--events", type=int, help="events per round and mode (default 8000, quick 1000)")
    parser.add_argument("--reference", type=int, help="bare-server requests per round (default 10000, quick 2000)")
    parser.add_argument("--idle", type=int, help="idle persisted sessions for memory (default 10000, quick 500)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--warmup", type=int, help="untimed requests per server first (default 2 x concurrency)")
    parser.add_argument("--verify", type=int, default=50, help="sessions queried to check counters (default 50)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (engine logs, databases)")
    args = parser.parse_args(argv)

    def pick(value: int | None, full: int, quick: int) -> int:
        return max(1, value if value is not None else (quick if args.quick else full))

    concurrency = max(1, args.concurrency)
    return Settings(
        quick=args.quick, starts=pick(args.starts, 4000, 500), events=pick(args.events, 8000, 1000),
        idle=pick(args.idle, 10_000, 500), reference=pick(args.reference, 10_000, 2000),
        rounds=pick(args.rounds, 5, 1), concurrency=concurrency,
        warmup=pick(args.warmup, 2 * concurrency, 2 * concurrency), verify=max(2, args.verify), keep=args.keep,
    )


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Every phase against its own process, sharing one client session."""
    problems = Problems()
    began = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=settings.concurrency + 16)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        rates = await measure_rates(client, settings, workdir, problems)
        memory = await measure_memory(client, settings, workdir, problems)
    reference, off, on = rates["reference"], rates["persistence_off"], rates["persistence_on"]
    for name, record in (("persistence off", off), ("persistence on", on), ("memory", memory)):
        if record.get("exit_code") != 0:
            problems.append(f"{name}: engine exited with {record.get('exit_code')} on SIGTERM")
    result = {
        "headline": headline(reference, off, on, memory),
        "reference": reference, "persistence_off": off, "persistence_on": on, "memory": memory,
        "settings": asdict(settings), "duration_seconds": round(time.perf_counter() - began, 1),
        "python": platform.python_version(), "aiohttp": aiohttp.__version__, "cpus": os.cpu_count(),
        "machine": platform.machine(), "problems": list(problems), "ok": not problems,
    }
    result["disturbance"] = disturbance(result)
    return result


def alarm_notes(result: dict[str, Any]) -> list[str]:
    """Every engine's log alarms, as report lines."""
    return [f"engine log ({name}): {line}" for name in ("persistence_off", "persistence_on", "memory")
            for line in result[name].get("log_alarms", [])]


async def main(argv: list[str] | None = None) -> int:
    """Run, print the table, log alarms and problems on stderr, and the JSON line last; 1 on any problem."""
    settings = settings_from(argv)
    return await bench_main("bench-sessions-", settings.keep, functools.partial(run, settings), print_table,
                            alarm_notes)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
