"""Callback benchmark: callbacks per second from REST create to COMPLETED, end to end.

Run from the repository root as ``python bench/callbacks.py`` (``--quick`` for a smoke run).
In one run it

* starts a real engine process (persistence on: SQLite in a fresh data folder) whose
  contact-center simulator runs time ``--time-scale`` times faster, with many agents and short
  calls, so the figure is bound by the engine and not by simulated waiting;
* creates ``--callbacks`` callbacks (``POST /genesys/1/service/callback/{service}``) with
  ``--concurrency`` requests in flight while a watcher polls every ``--poll`` seconds until none
  is open: by default the live-session count of ``/health`` (cheap for the engine), confirmed by
  the list of callbacks not yet COMPLETED; with ``--watch list`` that list on every poll.
  Throughput = callbacks / seconds from the first create to the moment the last one was COMPLETED;
* reads every record back: each must be COMPLETED with reason AGENT_CONNECTED, and any answer
  but 200 fails the run. The records' own created and completed times, mapped from the engine's
  scaled clock to the wall clock, give the exact end moment (the watcher only bounds it) and
  every callback's create-to-complete latency;
* measures the bare aiohttp server (``bench/bare_server.py``) under the same client, body shape
  and concurrency, once before and once after the callback phase: ours / bare is comparable
  across machines.

Engine CPU seconds and peak RSS over the phase, the client's CPU, other processes' load and the
engine log's warnings are reported too. The last line of output is one JSON object with every
figure; the exit code is 1 when any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    DISTURBED,
    HANDLE,
    HEADERS,
    QUEUE,
    RING,
    ROUTE,
    TREATMENT,
    BenchFailed,
    Problems,
    alarm_lines,
    bare_server,
    bench_main,
    kind_notes,
    line_kinds,
    managed_engine,
    mib,
    ratio,
    read_log,
    simulator_toml,
)
from bench.httpload import Cpu, LoadResult, drive, memory_bytes, quantile  # noqa: E402
from tests.support.engine_process import EngineProcess  # noqa: E402

BASE = "/genesys/1/service/callback"
SERVICE = "bench"
#: Service options: no limit may refuse a create, and no TTL may end a callback that waited long.
SERVICE_OPTIONS = {
    "_service": "callback", "_urs_virtual_queue": QUEUE, "_wait_for_agent": True,
    "_max_queued_callbacks_per_service": 10_000_000, "_max_request_by_time_bucket": 10_000_000,
    "_ttl": 10_000_000, "_max_dial_attempts": 1,
}
#: Flow status events every completed callback must have recorded exactly once.
ONCE_EVENTS = ("_cbe_on_service_create", "_cbe_on_callback_submitted", "_cbe_on_service_exit")
#: The engine's list query returns at most this many records (``Store.find_callbacks``).
LIST_CAP = 1000


@dataclass(frozen=True)
class Settings:
    """Counts, speeds and concurrency of one run."""

    quick: bool
    callbacks: int
    concurrency: int
    reference: int
    warmup: int
    poll: float
    time_scale: float
    agents: int
    stall: float
    watch: str
    verify_events: int
    keep: bool
    flow: str = "callback"


# -- configuration and processes -------------------------------------------------------------

def write_config(root: Path, settings: Settings) -> Path:
    """A config folder holding only the benchmark service and the fast simulator."""
    config = root / "config"
    (config / "services").mkdir(parents=True, exist_ok=True)
    (config / "business-hours").mkdir(exist_ok=True)
    (config / "simulator.toml").write_text(simulator_toml(settings.time_scale, settings.agents))
    (config / "services" / f"{SERVICE}.json").write_text(json.dumps({**SERVICE_OPTIONS, "_service": settings.flow}))
    return config


def log_alarms(path: Path) -> dict[str, Any]:
    """The engine log's line count, and its lines at WARNING or above: count, first 20, kinds."""
    lines = read_log(path) or []
    alarms = alarm_lines(lines)
    return {"log_lines": len(lines), "log_alarm_count": len(alarms), "log_alarms": alarms[:20],
            "log_alarm_kinds": line_kinds(alarms)}


def engine_running(workdir: Path, settings: Settings,
                   record: dict[str, Any]) -> AbstractAsyncContextManager[EngineProcess]:
    """A fresh persisting engine; on exit stops it gracefully and notes how that went and what the log said."""
    config = write_config(workdir, settings)
    engine = EngineProcess(workdir / "data", REPO / "scxml", config_dir=str(config), persistence="true")
    return managed_engine(engine, record, log_alarms)


# -- measuring -------------------------------------------------------------------------------

def cpu_figures(cpu: Cpu, work: int) -> dict[str, float]:
    """Server CPU seconds, shares (1.0 = one core) of server, client, others and the hypervisor;
    server CPU per unit of work."""
    use = cpu.used()
    server = use.seconds["server"]
    return {"server_cpu_seconds": round(server, 3), **use.shares(),
            "server_cpu_ms_per_unit": round(1000 * server / max(1, work), 3)}


def create_body(index: int) -> bytes:
    """A create body with its own customer number (no dial rule matches: every dial answers)."""
    return json.dumps({"_customer_number": f"+1555{9_000_000 + index:07d}"}).encode()


async def request(client: aiohttp.ClientSession, method: str, url: str, failures: list[str],
                  body: bytes | None = None) -> tuple[int, bytes]:
    """One request with the client key; a non-200 answer is noted with its text."""
    async with client.request(method, url, data=body, headers=HEADERS) as response:
        raw = await response.read()
        if response.status != 200:
            failures.append(f"{response.status} {method} {url}: {raw[:200].decode(errors='replace')}")
        return response.status, raw


def checked(result: LoadResult, label: str, problems: Problems) -> dict[str, Any]:
    """A batch's summary; its failed requests become problems."""
    if result.ok != result.requests or result.failures:
        problems.append(f"{label}: {result.requests - result.ok} of {result.requests} requests failed "
                        f"{dict(result.statuses)}: " + "; ".join(result.failures[:3]))
    return result.summary()


async def reference_round(client: aiohttp.ClientSession, base: str, pid: int, settings: Settings, count: int,
                          problems: Problems) -> dict[str, Any]:
    """A timed batch against the bare server with bodies shaped like the creates."""
    failures: list[str] = []

    async def one(index: int) -> int:
        return (await request(client, "POST", f"{base}/echo", failures, create_body(index)))[0]

    cpu = Cpu({"server": pid})
    result = await drive(count, settings.concurrency, one)
    result.failures.extend(failures)
    return {**checked(result, "bare server", problems), **cpu_figures(cpu, count)}


async def create_callbacks(client: aiohttp.ClientSession, base: str, count: int, concurrency: int,
                           first: int = 0) -> tuple[LoadResult, list[str]]:
    """Create ``count`` immediate callbacks; returns the load figures and the ids in order."""
    ids: list[str] = [""] * count
    failures: list[str] = []
    url = f"{base}{BASE}/{SERVICE}"

    async def one(index: int) -> int:
        status, raw = await request(client, "POST", url, failures, create_body(first + index))
        if status == 200:
            ids[index] = json.loads(raw)["_id"]
        return status

    result = await drive(count, concurrency, one)
    result.failures.extend(failures)
    return result, [cid for cid in ids if cid]


@dataclass
class Watch:
    """What the watcher saw while waiting for every callback to be COMPLETED."""

    mode: str
    interval: float
    polls: int = 0
    list_polls: int = 0
    bytes: int = 0
    poll_seconds: float = 0.0
    poll_max: float = 0.0
    open_max: int = 0
    rss_max: int = 0
    done_at: float | None = None  # perf_counter of the first empty list after the last create
    trace: list[tuple[float, int]] = field(default_factory=list)

    def timed(self, seconds: float) -> None:
        """Note one poll's round trip: under load it is mostly the engine's event-loop lag."""
        self.poll_seconds += seconds
        self.poll_max = max(self.poll_max, seconds)

    def summary(self, began: float) -> dict[str, Any]:
        """JSON-ready figures; the trace is thinned to at most 40 points."""
        step = max(1, len(self.trace) // 40)
        return {
            "watch": self.mode, "poll_interval_s": self.interval, "polls": self.polls,
            "list_polls": self.list_polls, "poll_bytes": self.bytes,
            "poll_seconds_total": round(self.poll_seconds, 3),
            "poll_ms_mean": round(1000 * self.poll_seconds / max(1, self.polls), 2),
            "poll_ms_max": round(1000 * self.poll_max, 2),
            "open_max_seen": self.open_max,
            "open_max_capped": self.mode == "list" and self.open_max >= LIST_CAP,
            "observed_done_s": None if self.done_at is None else round(self.done_at - began, 3),
            "open_trace": [(round(t - began, 2), n) for t, n in self.trace[::step]],
        }


async def open_callbacks(client: aiohttp.ClientSession, base: str, watch: Watch) -> int:
    """How many callbacks of the service are not COMPLETED (at most ``LIST_CAP``: the engine's limit)."""
    failures: list[str] = []
    began = time.perf_counter()
    status, raw = await request(client, "GET", f"{base}{BASE}/{SERVICE}?_callback_state=!COMPLETED", failures)
    watch.timed(time.perf_counter() - began)
    if status != 200:
        raise BenchFailed(f"polling open callbacks: {failures[-1]}")
    watch.polls, watch.list_polls, watch.bytes = watch.polls + 1, watch.list_polls + 1, watch.bytes + len(raw)
    return len(json.loads(raw))


async def live_sessions(client: aiohttp.ClientSession, base: str, watch: Watch) -> int:
    """Sessions the engine holds (``/health``): a callback's session ends once it is COMPLETED.

    Far cheaper for the engine than the list, whose every poll reads and serialises up to a
    thousand records while the engine is being measured.
    """
    began = time.perf_counter()
    async with client.get(f"{base}/health") as response:
        raw = await response.read()
        if response.status != 200:
            raise BenchFailed(f"polling /health: {response.status} {raw[:200]!r}")
    watch.timed(time.perf_counter() - began)
    watch.polls, watch.bytes = watch.polls + 1, watch.bytes + len(raw)
    return int(json.loads(raw)["sessions"])


async def watch_open(client: aiohttp.ClientSession, base: str, pid: int, settings: Settings,
                     creates_done: asyncio.Event) -> Watch:
    """Poll until no callback is open after the last create was answered.

    ``creates_done`` is read before each poll is sent, so an answer it accepts was computed
    after every create had been stored. In ``health`` mode the live-session count is the
    progress signal and the list only confirms the end; in ``list`` mode every poll reads the
    list. A count that stops moving for ``settings.stall`` seconds once creates are done means
    stuck callbacks: fail.
    """
    watch = Watch(settings.watch, settings.poll)
    last_open, last_change = -1, time.perf_counter()
    while True:
        await asyncio.sleep(settings.poll)
        finished = creates_done.is_set()
        if settings.watch == "list":
            count = await open_callbacks(client, base, watch)
        else:
            count = await live_sessions(client, base, watch)
            if finished and count == 0:
                count = await open_callbacks(client, base, watch)
        now = time.perf_counter()
        watch.open_max = max(watch.open_max, count)
        watch.rss_max = max(watch.rss_max, memory_bytes(pid)["VmRSS"])
        watch.trace.append((now, count))
        if finished and count == 0:
            watch.done_at = now
            return watch
        if count != last_open:
            last_open, last_change = count, now
        elif finished and now - last_change > settings.stall:
            raise BenchFailed(f"{count} callbacks stayed open for {settings.stall:g} s after the last create")


async def engine_clock(client: aiohttp.ClientSession, base: str) -> tuple[float, float, float]:
    """The engine's scaled clock, the wall time it was read at, and the time scale.

    Best of three round trips: the midpoint of the shortest one is the closest reading.
    """
    readings = []
    for _ in range(3):
        sent = time.time()
        async with client.get(f"{base}/health") as response:
            body = await response.json()
        got = time.time()
        clock = datetime.fromisoformat(body["clock"].replace("Z", "+00:00")).timestamp()  # ISO 8601 UTC
        readings.append((got - sent, clock, (sent + got) / 2, float(body["time_scale"])))
    _, clock, wall, scale = min(readings)
    return clock, wall, scale


async def fetch_records(client: aiohttp.ClientSession, base: str, ids: list[str],
                        concurrency: int) -> tuple[LoadResult, list[dict[str, Any]]]:
    """Every callback's record by id (completed ones are read from the store)."""
    records: list[dict[str, Any]] = [{} for _ in ids]
    failures: list[str] = []

    async def one(index: int) -> int:
        status, raw = await request(client, "GET", f"{base}{BASE}?_id={ids[index]}", failures)
        if status == 200:
            found = json.loads(raw)
            if len(found) == 1:
                records[index] = found[0]
            else:
                failures.append(f"callback {ids[index]}: {len(found)} records")
        return status

    result = await drive(len(ids), concurrency, one)
    result.failures.extend(failures)
    return result, records


def parse_iso(text: str) -> float:
    """Epoch seconds of the engine's ``YYYY-MM-DDTHH:MM:SS.mmmZ`` times."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def quantiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max, in milliseconds."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * quantile(ordered, q), 1)

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": at(1.0)}


def judge_records(records: list[dict[str, Any]], ids: list[str], clock: tuple[float, float, float],
                  problems: Problems) -> dict[str, Any]:
    """States and reasons of every record; the last completion on the wall clock; latencies.

    A record's ``_created_time`` and ``_completed_time`` are the engine's scaled clock, so
    their difference divided by the scale is the real create-to-complete time.
    """
    states = Counter(r.get("_callback_state", "MISSING") for r in records)
    reasons = Counter(r.get("_callback_reason") or "NONE" for r in records)
    bad = [(cid, r.get("_callback_state"), r.get("_callback_reason")) for cid, r in zip(ids, records, strict=True)
           if r.get("_callback_state") != "COMPLETED" or r.get("_callback_reason") != "AGENT_CONNECTED"]
    if bad:
        problems.append(f"{len(bad)} of {len(ids)} callbacks not COMPLETED/AGENT_CONNECTED, e.g. {bad[:3]}; "
                        f"states {dict(states)}, reasons {dict(reasons)}")
    engine_now, wall_now, scale = clock
    done = [r for r in records if r.get("_completed_time") and r.get("_created_time")]
    completed = [parse_iso(r["_completed_time"]) for r in done]
    latencies = [(parse_iso(r["_completed_time"]) - parse_iso(r["_created_time"])) / scale for r in done]
    last = max(completed) if completed else None
    return {
        "states": dict(states), "reasons": dict(reasons), "not_agent_connected": len(bad),
        "last_completed_wall": None if last is None else wall_now + (last - engine_now) / scale,
        "create_to_complete": quantiles(latencies),
        "create_to_complete_floor_ms": round(1000 * (RING + TREATMENT + ROUTE + HANDLE) / scale, 1),
    }


async def check_events(client: aiohttp.ClientSession, base: str, ids: list[str], size: int,
                       problems: Problems) -> int:
    """Sampled callbacks recorded each once-only status event exactly once (none lost, none doubled)."""
    picked = sorted({round(i * (len(ids) - 1) / max(1, size - 1)) for i in range(min(size, len(ids)))})
    failures: list[str] = []
    for index in picked:
        status, raw = await request(client, "GET", f"{base}{BASE}/{SERVICE}/{ids[index]}/events", failures)
        if status != 200:
            problems.append(f"events of {ids[index]}: {failures[-1]}")
            continue
        counts = Counter(event["event_id"] for event in json.loads(raw))
        wrong = {name: counts[name] for name in ONCE_EVENTS if counts[name] != 1}
        if wrong:
            problems.append(f"callback {ids[index]} recorded {wrong} (each expected once)")
    return len(picked)


async def wait_all_completed(client: aiohttp.ClientSession, base: str, timeout: float) -> None:
    """Until no callback is open: the warm-up must not spill into the timed phase."""
    deadline = time.monotonic() + timeout
    failures: list[str] = []
    while time.monotonic() < deadline:
        status, raw = await request(client, "GET", f"{base}{BASE}/{SERVICE}?_callback_state=!COMPLETED", failures)
        if status != 200:
            raise BenchFailed(f"warm-up poll: {failures[-1]}")
        if raw.strip() == b"[]":
            return
        await asyncio.sleep(0.1)
    raise BenchFailed(f"warm-up callbacks still open after {timeout:g} s")


async def callback_phase(client: aiohttp.ClientSession, engine: EngineProcess, settings: Settings,
                         problems: Problems) -> dict[str, Any]:
    """The timed phase: creates and the watcher side by side, then every record checked."""
    assert engine.proc is not None
    pid = engine.proc.pid
    rss_before = memory_bytes(pid)["VmRSS"]
    creates_done = asyncio.Event()
    cpu = Cpu({"server": pid})
    began_wall, began = time.time(), time.perf_counter()
    watcher = asyncio.create_task(watch_open(client, engine.url, pid, settings, creates_done))
    try:
        created, ids = await create_callbacks(client, engine.url, settings.callbacks, settings.concurrency,
                                              first=settings.warmup)
    except BaseException:
        watcher.cancel()
        raise
    finally:
        creates_done.set()
    watch = await watcher
    usage = cpu_figures(cpu, settings.callbacks)
    hwm = memory_bytes(pid)["VmHWM"]
    clock = await engine_clock(client, engine.url)
    fetched, records = await fetch_records(client, engine.url, ids, settings.concurrency)
    judged = judge_records(records, ids, clock, problems)
    sampled = await check_events(client, engine.url, ids, settings.verify_events, problems)
    assert watch.done_at is not None
    last = judged.pop("last_completed_wall")
    exact = None if last is None else last - began_wall
    observed = watch.done_at - began
    return {
        "callbacks": len(ids), "create": checked(created, "create", problems),
        "read_back": checked(fetched, "read back", problems),
        "seconds_to_last_completed": None if exact is None else round(exact, 3),
        "seconds_to_observed_done": round(observed, 3),
        "throughput": None if not exact else round(len(ids) / exact, 1),
        "throughput_observed": round(len(ids) / observed, 1),
        **judged, "events_checked": sampled, "watch": watch.summary(began),
        "engine": {**usage, "rss_bytes_before": rss_before, "rss_bytes_max_sampled": watch.rss_max,
                   "hwm_bytes": hwm},
    }


async def measure(client: aiohttp.ClientSession, settings: Settings, engine: EngineProcess, ref: tuple[str, int],
                  problems: Problems) -> dict[str, Any]:
    """Warm both servers, then bare round, callback phase, bare round."""
    ref_base, ref_pid = ref
    await reference_round(client, ref_base, ref_pid, settings, settings.warmup, Problems())
    warm, _ = await create_callbacks(client, engine.url, settings.warmup, settings.concurrency)
    checked(warm, "warm-up create", problems)
    await wait_all_completed(client, engine.url, timeout=max(30.0, settings.stall))
    rounds = [await reference_round(client, ref_base, ref_pid, settings, settings.reference, problems)]
    phase = await callback_phase(client, engine, settings, problems)
    rounds.append(await reference_round(client, ref_base, ref_pid, settings, settings.reference, problems))
    return {"phase": phase, "reference_rounds": rounds}


# -- report ----------------------------------------------------------------------------------

def headline(phase: dict[str, Any], rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures a reader wants first."""
    rates = [r["rate"] for r in rounds]
    reference = max(rates) if rates else None
    create = phase.get("create", {})
    engine = phase.get("engine", {})
    return {
        "callbacks_per_second": phase.get("throughput"),
        "callbacks_per_second_observed": phase.get("throughput_observed"),
        "reference_rate": reference, "reference_rates": rates,
        "reference_rate_median": statistics.median(rates) if rates else None,
        "ratio_callbacks_vs_reference": ratio(phase.get("throughput"), reference),
        "create_rate": create.get("rate"),
        "ratio_create_vs_reference": ratio(create.get("rate"), reference),
        "create_latency_ms_p50": create.get("latency_ms_p50"), "create_latency_ms_p99": create.get("latency_ms_p99"),
        "create_latency_ms_max": create.get("latency_ms_max"),
        "engine_cpu_seconds": engine.get("server_cpu_seconds"),
        "engine_cpu_ms_per_callback": engine.get("server_cpu_ms_per_unit"),
        "engine_peak_rss_bytes": engine.get("hwm_bytes"),
        "reasons": phase.get("reasons"),
        "foreign_cpu_share_phase": engine.get("foreign_cpu_share"), "steal_share_phase": engine.get("steal_share"),
        "foreign_cpu_share_reference_max": max((r.get("foreign_cpu_share", 0.0) for r in rounds), default=None),
    }


def print_report(result: dict[str, Any]) -> None:
    """A readable summary before the JSON line."""
    s, h, p = result["settings"], result["headline"], result.get("phase", {})
    print(f"callback benchmark: {s['callbacks']} callbacks, concurrency {s['concurrency']}, time scale "
          f"{s['time_scale']:g}, {s['agents']} agents, persistence on, Python {result['python']}, "
          f"{result['cpus']} CPUs{'  [quick]' if s['quick'] else ''}")
    if not p:
        return
    create, engine, watch = p["create"], p["engine"], p["watch"]
    print(f"  callbacks/s create -> COMPLETED : {h['callbacks_per_second']}  ({p['seconds_to_last_completed']} s; "
          f"watcher saw none open at {p['seconds_to_observed_done']} s -> {h['callbacks_per_second_observed']}/s)")
    print(f"  create requests/s              : {h['create_rate']}  (p50/p99/max "
          f"{create['latency_ms_p50']}/{create['latency_ms_p99']}/{create['latency_ms_max']} ms)")
    print(f"  bare aiohttp requests/s        : {h['reference_rate']}  (rounds {h['reference_rates']})")
    print(f"  ours / bare                    : callbacks {h['ratio_callbacks_vs_reference']}, "
          f"creates {h['ratio_create_vs_reference']}")
    lat = p["create_to_complete"]
    print(f"  create -> COMPLETED per callback: p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms, "
          f"max {lat.get('max_ms')} ms (simulated floor {p['create_to_complete_floor_ms']} ms)")
    print(f"  reasons {p['reasons']}; states {p['states']}; events checked on {p['events_checked']} callbacks")
    print(f"  engine: {engine['server_cpu_seconds']} CPU s ({engine['server_cpu_share']} of a core, "
          f"{engine['server_cpu_ms_per_unit']} ms/callback), RSS {mib(engine['rss_bytes_before'])} -> max "
          f"{mib(engine['rss_bytes_max_sampled'])}, peak {mib(engine['hwm_bytes'])}; client "
          f"{engine['client_cpu_share']} of a core; others {engine['foreign_cpu_share']}, "
          f"steal {engine['steal_share']}")
    print(f"  watcher ({watch['watch']}): every {watch['poll_interval_s']} s, {watch['polls']} polls "
          f"({watch['list_polls']} of the open list), {watch['poll_ms_mean']} ms mean, {watch['poll_ms_max']} max, "
          f"{watch['poll_bytes']:,} bytes; most in flight {watch['open_max_seen']}"
          f"{' (capped by the engine list limit)' if watch['open_max_capped'] else ''}")
    rec = result["engine_process"]
    print(f"  engine stop: exit {rec.get('exit_code')} in {rec.get('stop_seconds')} s; "
          f"{rec.get('log_alarm_count')} log alarms in {rec.get('log_lines')} lines")
    disturbed = [engine["foreign_cpu_share"], engine["steal_share"], h["foreign_cpu_share_reference_max"] or 0.0]
    if max(disturbed) > DISTURBED:
        print(f"WARNING: the machine was busy with other work (others/steal in the phase {disturbed[0]}/"
              f"{disturbed[1]}, others in a bare round up to {disturbed[2]}); the rates are low")


def revision() -> dict[str, Any]:
    """The commit measured and how many files differ from it: figures of a dirty tree say so."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD").strip() or None,
            "changed_files": len(git("status", "--porcelain", "--untracked-files=no").splitlines())}


def settings_from(argv: list[str] | None) -> Settings:
    """Parse the CLI; ``--quick`` shrinks every count not given explicitly."""
    parser = argparse.ArgumentParser(description="callback benchmark: REST create to COMPLETED, real engine")
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, a few seconds")
    parser.add_argument("--callbacks", type=int, help="callbacks in the timed phase (default 6000, quick 300)")
    parser.add_argument("--concurrency", type=int, default=32, help="create requests in flight (default 32)")
    parser.add_argument("--reference", type=int, help="bare-server requests per round (default 10000, quick 1000)")
    parser.add_argument("--warmup", type=int, help="untimed callbacks first (default 2 x concurrency)")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between polls of open callbacks")
    parser.add_argument("--time-scale", type=float, default=2000.0, help="simulator time scale (default 2000)")
    parser.add_argument("--agents", type=int, default=300, help=f"agents in {QUEUE} (default 300)")
    parser.add_argument("--watch", choices=("health", "list"), default="health",
                        help="progress signal: live sessions from /health, confirmed by the open list at the end "
                             "(default), or the open list on every poll")
    parser.add_argument("--stall", type=float, default=30.0, help="seconds without progress before failing")
    parser.add_argument("--verify-events", type=int, default=20, help="callbacks whose events are checked")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (engine log, database)")
    parser.add_argument("--flow", default="callback",
                        help="the flow of scxml/ the service runs (default callback, the ECMAScript one; "
                             "callback-python for the python datamodel)")
    args = parser.parse_args(argv)

    def pick(value: int | None, full: int, quick: int) -> int:
        return max(1, value if value is not None else (quick if args.quick else full))

    concurrency = max(1, args.concurrency)
    return Settings(
        quick=args.quick, callbacks=pick(args.callbacks, 6000, 300), concurrency=concurrency,
        reference=pick(args.reference, 10_000, 1000), warmup=pick(args.warmup, 2 * concurrency, 2 * concurrency),
        poll=max(0.01, args.poll), time_scale=args.time_scale, agents=max(1, args.agents),
        stall=max(1.0, args.stall), watch=args.watch, verify_events=max(1, args.verify_events), keep=args.keep,
        flow=args.flow,
    )


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Both servers side by side, one client session; a failed check ends the phase, not the report."""
    problems = Problems()
    began = time.perf_counter()
    record: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=settings.concurrency + 16)
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)))
        ref = await stack.enter_async_context(bare_server(client, workdir))
        engine = await stack.enter_async_context(engine_running(workdir, settings, record))
        try:
            figures = await measure(client, settings, engine, ref, problems)
        except BenchFailed as exc:
            problems.append(str(exc))
    if record.get("exit_code") != 0:
        problems.append(f"engine exited with {record.get('exit_code')} on SIGTERM")
    phase, rounds = figures.get("phase", {}), figures.get("reference_rounds", [])
    return {
        "headline": headline(phase, rounds), "phase": phase, "reference_rounds": rounds,
        "engine_process": record, "settings": asdict(settings), "revision": revision(),
        "duration_seconds": round(time.perf_counter() - began, 1), "python": platform.python_version(),
        "aiohttp": aiohttp.__version__, "cpus": os.cpu_count(), "machine": platform.machine(),
        "problems": list(problems), "ok": not problems,
    }


async def main(argv: list[str] | None = None) -> int:
    """Run, print the summary, alarms and problems on stderr, and the JSON line last; 1 on any problem."""
    settings = settings_from(argv)
    return await bench_main("bench-callbacks-", settings.keep, functools.partial(run, settings), print_report,
                            lambda result: kind_notes(result["engine_process"].get("log_alarm_kinds", {})))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
