"""Scale benchmark: costs that must not grow with load or history (issue 15, items 2 and 3).

Run from the repository root as ``python bench/scale.py`` (``--quick`` for a smoke run in
seconds). Every figure comes from real engine processes (persistence on, SQLite) whose databases
are built beforehand with bulk inserts, so a run takes minutes, not the hours the API would need:

* **live load**: one engine each with 1k, 10k and 50k live SCHEDULED callbacks restored from its
  database. Creates (scheduled ones, which pass the capacity check, and immediate ones into a
  queue without agents, which pass the queue-size check, start a flow and stay QUEUED) run in
  interleaved rounds over the three engines, so a disturbance of the machine hits every size
  alike. Reported: p50 latency and engine CPU per create at each size, and their ratio to the
  smallest size (target <= 1.5);
* **history**: an engine over an empty database and one over 200k COMPLETED callbacks with 1M
  recorded events, both with the same small live set; queries by ``_id``, number and state, the
  open list of a service, the events of a callback, and the capacity and queue-size checks
  (scheduled and immediate creates) run interleaved; reported as the ratio history / empty
  (target <= 1.5). The retention purge query (nothing to purge) is timed on both databases;
* **start-up and memory**: the seconds from starting the process to ``/health`` answering with
  50k scheduled callbacks waiting (target < 10 s), and the RSS per live callback (the RSS of the
  50k engine minus that of the 1k engine, over the 49k callbacks between: target <= 4 KiB). The
  RSS per QUEUED callback, whose flow session runs, is reported too (5,000 immediate creates on
  the 1k engine; no target: most of it is the session).

A subscription-publish section lives in ``bench/scale_subscriptions.py`` when that file exists:
it must offer ``async def run(workdir: Path, quick: bool) -> dict`` returning its figures, with a
``ratios`` dict (name -> ratio, each checked against 1.5) and a ``problems`` list; its figures
appear under ``subscriptions`` in the JSON line.

The last line of output is one JSON object with every figure; the exit code is 1 when a request
failed or a database did not come back as built (a missed target is reported, not an error).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import HEADERS, Problems, alarm_lines, bench_main, managed_engine, read_log  # noqa: E402
from bench.httpload import cpu_seconds, memory_bytes, wait_quiet  # noqa: E402
from engine import persistence  # noqa: E402
from tests.support.engine_process import EngineProcess  # noqa: E402

SERVICE = "scale"
QUEUED_SETTLE_SECONDS = 3.0  # past the default ecmascript_idle_seconds, see rss_per_queued
QUEUE = "Scale_VQ"  # no agents: an immediate callback stays QUEUED, its flow waiting
BASE = "/genesys/1/service/callback"
#: Nothing but the measured checks may refuse a create, and no TTL may end a callback meanwhile.
SERVICE_OPTIONS = {
    "_service": "callback", "_urs_virtual_queue": QUEUE, "_wait_for_agent": True,
    "_max_queued_callbacks_per_service": 10_000_000, "_max_request_by_time_bucket": 10_000_000,
    "_ttl": 10_000_000,
}
SIMULATOR = (f"time_scale = 1.0\nring_seconds = 8\ntreatment_seconds = 4\nroute_seconds = 1\n"
             f"default_handle_seconds = 30\ndefault_outcome = \"answer\"\nseed = 7\ndial_rules = []\n"
             f"[queues.{QUEUE}]\nagents = 0\nhandle_seconds = 30\n")
TARGET_RATIO = 1.5
TARGET_STARTUP_SECONDS = 10.0
TARGET_RSS_PER_CALLBACK = 4096
DAY = 86400.0


class Sizes:
    def __init__(self, quick: bool):
        self.live = (100, 1000, 2000) if quick else (1000, 10_000, 50_000)
        self.completed = 5000 if quick else 200_000
        self.events = 25_000 if quick else 1_000_000
        self.event_chunk = 10_000 if quick else 100_000  # a quick run builds its events in several chunks too
        self.history_live = 50  # the same live set over an empty and a long history
        self.queued = 300 if quick else 5000  # immediate callbacks whose RSS is measured (flow running)
        self.rounds = 4 if quick else 10  # interleaved rounds of creates or queries per engine
        # Creates of each kind, or queries of each kind, per round. The engine's CPU is read in clock
        # ticks (10 ms): a quick run's creates of one kind must take several, or a ratio of them is 0/0.
        self.per_round = 15 if quick else 30


# -- databases built in bulk -------------------------------------------------------------------

def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def record(n: int, state: str, desired: float, created: float) -> dict[str, Any]:
    """A record as the service writes one (``CallbackService.create``), COMPLETED ones with what
    the flow and the lifecycle add on the way."""
    rec: dict[str, Any] = {
        "_id": uuid.uuid4().hex, "_service_name": SERVICE, "_customer_number": f"+1555{n:09d}",
        "_callback_state": state, "_desired_time": iso(desired),
        "_expiration_time": iso(desired + SERVICE_OPTIONS["_ttl"]), "_created_time": iso(created),
        "_call_direction": "USERTERMINATED", "_urs_virtual_queue": QUEUE, "_updated_time": iso(created),
        "order": f"A-{n}",
    }
    if state == "COMPLETED":
        rec.update(_callback_reason="AGENT_CONNECTED", _completed_time=iso(created + 200),
                   _ors_session_id=uuid.uuid4().hex, _submitted_time=iso(created))
    return rec


def row(rec: dict[str, Any], desired: float, created: float, serial: int) -> tuple[Any, ...]:
    return (rec["_id"], rec["_service_name"], rec["_callback_state"], rec["_customer_number"], desired,
            desired + SERVICE_OPTIONS["_ttl"], rec.get("_ors_session_id"), created, created,
            json.dumps(rec, separators=(",", ":")), serial)


async def build_database(data: Path, live: int, completed: int, events: int, first_number: int,
                         chunk: int = 100_000) -> None:
    """The engine's own schema (its migrations), then ``live`` SCHEDULED callbacks spread over the
    next 30 days and ``completed`` COMPLETED ones of the last day with ``events`` status events
    between them, inserted in bulk."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / "engine.db"
    await (await persistence.open_store(f"sqlite+aiosqlite:///{path}")).close()
    now = time.time()
    db = sqlite3.connect(path)
    try:
        insert = ("INSERT INTO callbacks (id, service, state, customer_number, desired_time, expiration_time, "
                  "session_id, created_at, updated_at, record, serial) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
        rows = []  # serials below any the engine mints (negative, as migration 9 numbers old callbacks)
        for i in range(live):
            desired = now + DAY + (30 * DAY) * i / max(1, live)
            rows.append(row(record(first_number + i, "SCHEDULED", desired, now - 60), desired, now - 60, -live - i))
        db.executemany(insert, rows)
        done_ids = []
        for start in range(0, completed, 20_000):
            rows = []
            for i in range(start, min(completed, start + 20_000)):
                created = now - DAY + DAY * i / max(1, completed)
                rec = record(10_000_000 + i, "COMPLETED", created, created)
                done_ids.append(rec["_id"])
                rows.append(row(rec, created, created, -2 * live - completed + i))
            db.executemany(insert, rows)
        for start in range(0, events, chunk):  # inserted ``chunk`` events at a time
            batch = []
            for i in range(start, min(events, start + chunk)):
                n = i % len(done_ids)
                cid = done_ids[n]
                message = {"event_id": "_cbe_on_callback_status_updated", "timestamp": str(int(now)),
                           "_service_id": cid, "_service_name": SERVICE, "_callback_state": "COMPLETED",
                           "_customer_number": "+15550000000", "_v_queue": QUEUE}
                # one event a row: how a quiet engine stores them (a busy one packs a batch's in one)
                row_events = json.dumps([[i + 1, now, message["event_id"], message]], separators=(",", ":"))
                batch.append((i + 1, cid, -2 * live - completed + n, now, row_events))
            db.executemany("INSERT INTO callback_event_groups (id, callback_id, callback_serial, created_at, events) "
                           "VALUES (?,?,?,?,?)", batch)
        db.commit()
    finally:
        db.close()
    path.chmod(0o600)  # as the engine keeps its database


def write_config(root: Path) -> Path:
    config = root / "config"
    (config / "services").mkdir(parents=True, exist_ok=True)
    (config / "business-hours").mkdir(exist_ok=True)
    (config / "simulator.toml").write_text(SIMULATOR)
    (config / "services" / f"{SERVICE}.json").write_text(json.dumps(SERVICE_OPTIONS))
    return config


# -- engines and requests ----------------------------------------------------------------------

class Probe:
    """One engine under measurement: its latencies and CPU per kind of request."""

    def __init__(self, name: str, engine: EngineProcess, client: aiohttp.ClientSession, problems: Problems):
        self.name = name
        self.engine = engine
        self.client = client
        self.problems = problems
        self.latencies: dict[str, list[float]] = {}
        self.cpu: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.created = 0

    @property
    def pid(self) -> int:
        assert self.engine.proc is not None
        return self.engine.proc.pid

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.client.request(method, self.engine.url + path, json=body, headers=HEADERS) as r:
            answer = await r.json()
            if r.status != 200:
                self.problems.append(f"{self.name}: {method} {path} answered {r.status}: {answer}")
            return answer

    async def timed(self, kind: str, times: int, request: Callable[[int], Awaitable[Any]]) -> None:
        """``times`` requests one after the other; their latencies and the engine's CPU per request."""
        cpu0 = cpu_seconds(self.pid)
        for i in range(times):
            began = time.perf_counter()
            await request(i)
            self.latencies.setdefault(kind, []).append(time.perf_counter() - began)
        self.cpu[kind] = self.cpu.get(kind, 0.0) + cpu_seconds(self.pid) - cpu0
        self.counts[kind] = self.counts.get(kind, 0) + times

    async def create(self, scheduled: bool) -> None:
        self.created += 1
        body: dict[str, Any] = {"_customer_number": f"+1666{self.created:09d}", "order": f"B-{self.created}"}
        if scheduled:
            body["_desired_time"] = iso(time.time() + 2 * DAY + 60 * self.created)
        await self.call("POST", f"{BASE}/{SERVICE}", body)

    def summary(self) -> dict[str, Any]:
        out = {}
        for kind, values in self.latencies.items():
            ordered = sorted(values)
            out[kind] = {"n": len(values), "p50_ms": round(statistics.median(ordered) * 1000, 3),
                         "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 3),
                         "cpu_ms": round(self.cpu[kind] / self.counts[kind] * 1000, 3)}
        return out


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if a and b else None


async def start_engine(stack: AsyncExitStack, workdir: Path, name: str, config: Path,
                       client: aiohttp.ClientSession, problems: Problems,
                       notes: dict[str, Any]) -> tuple[Probe, float]:
    """Start the engine of ``workdir/name``; the seconds until ``/health`` answered."""
    engine = EngineProcess(workdir / name, REPO / "scxml", config_dir=str(config), persistence="true")
    began = time.perf_counter()
    await stack.enter_async_context(managed_engine(engine, notes.setdefault(name, {}), log_findings))
    return Probe(name, engine, client, problems), time.perf_counter() - began


def log_findings(path: Path) -> dict[str, Any]:
    lines = read_log(path) or []
    restored = [line for line in lines if "open callbacks restored" in line]
    count = int(restored[0].split("callback service: ")[1].split()[0]) if restored else None
    return {"restored": count, "log_alarms": alarm_lines(lines)[:10]}


# -- the sections ------------------------------------------------------------------------------

async def live_load(workdir: Path, sizes: Sizes, config: Path, client: aiohttp.ClientSession,
                    problems: Problems) -> dict[str, Any]:
    """Create cost at each live size, interleaved; start-up and RSS of each engine."""
    notes: dict[str, Any] = {}
    for n, live in enumerate(sizes.live):
        await build_database(workdir / f"live{live}", live, 0, 0, n * 1_000_000)
    result: dict[str, Any] = {"sizes": {}}
    async with AsyncExitStack() as stack:
        probes = []
        for live in sizes.live:
            probe, startup = await start_engine(stack, workdir, f"live{live}", config, client, problems, notes)
            await wait_quiet(probe.pid, timeout=120)
            rss = memory_bytes(probe.pid)["VmRSS"]
            health = await probe.call("GET", "/health")
            result["sizes"][str(live)] = {"startup_s": round(startup, 3), "rss_bytes": rss,
                                          "health_sessions": health.get("sessions")}
            probes.append(probe)
        for _ in range(sizes.rounds):
            for probe in probes:
                await probe.timed("create_scheduled", sizes.per_round, lambda _i, p=probe: p.create(True))
                await probe.timed("create_immediate", sizes.per_round, lambda _i, p=probe: p.create(False))
        for live, probe in zip(sizes.live, probes, strict=True):
            result["sizes"][str(live)].update(probe.summary())
        result["rss_per_queued_callback_bytes"] = await rss_per_queued(probes[0], sizes.queued)
    for live in sizes.live:
        result["sizes"][str(live)]["log"] = found = notes.get(f"live{live}", {})
        if found.get("restored") != live:
            problems.append(f"the engine with {live} live callbacks restored {found.get('restored')}")
    small, large = (result["sizes"][str(s)] for s in (sizes.live[0], sizes.live[-1]))
    result["ratios"] = {}
    for live in sizes.live[1:]:
        here = result["sizes"][str(live)]
        for kind in ("create_scheduled", "create_immediate"):
            result["ratios"][f"{kind}_p50_{live}_vs_{sizes.live[0]}"] = ratio(here[kind]["p50_ms"],
                                                                            small[kind]["p50_ms"])
            result["ratios"][f"{kind}_cpu_{live}_vs_{sizes.live[0]}"] = ratio(here[kind]["cpu_ms"],
                                                                            small[kind]["cpu_ms"])
    result["startup_s_at_max_live"] = large["startup_s"]
    result["rss_per_live_callback_bytes"] = round(
        (large["rss_bytes"] - small["rss_bytes"]) / (sizes.live[-1] - sizes.live[0]))
    return result


async def rss_per_queued(probe: Probe, count: int) -> int:
    """RSS per QUEUED callback, its flow session running (waiting for an agent): ``count``
    immediate creates, 8 at a time, between two readings of a quiet engine."""
    await wait_quiet(probe.pid, timeout=120)
    before = memory_bytes(probe.pid)["VmRSS"]
    pending = iter(range(count))

    async def worker() -> None:
        for _ in pending:
            await probe.create(False)

    await asyncio.gather(*(worker() for _ in range(8)))
    # A session that just ran keeps its ECMAScript context for ecmascript_idle_seconds (2 s):
    # the figure is for callbacks waiting in the queue, so those contexts are waited out.
    await asyncio.sleep(QUEUED_SETTLE_SECONDS)
    await wait_quiet(probe.pid, timeout=120)
    return round((memory_bytes(probe.pid)["VmRSS"] - before) / count)


async def history(workdir: Path, sizes: Sizes, config: Path, client: aiohttp.ClientSession,
                  problems: Problems) -> dict[str, Any]:
    """Queries and checks over an empty database and a long history, interleaved."""
    notes: dict[str, Any] = {}
    first = 5_000_000
    await build_database(workdir / "empty", sizes.history_live, 0, 0, first)
    await build_database(workdir / "history", sizes.history_live, sizes.completed, sizes.events, first,
                         sizes.event_chunk)
    result: dict[str, Any] = {"completed": sizes.completed, "events": sizes.events, "live": sizes.history_live}
    async with AsyncExitStack() as stack:
        probes = []
        for name in ("empty", "history"):
            probe, startup = await start_engine(stack, workdir, name, config, client, problems, notes)
            await wait_quiet(probe.pid, timeout=120)
            result[f"startup_s_{name}"] = round(startup, 3)
            probes.append(probe)
        # The same live callbacks in both (same numbers); one of them to ask about by _id.
        live = [await probe.call("GET", f"{BASE}?_callback_state=SCHEDULED") for probe in probes]
        if any(len(found) != sizes.history_live for found in live):
            problems.append(f"live sets differ from what was built: {[len(found) for found in live]}")
        numbers = sorted(r["_customer_number"] for r in live[0])
        for _ in range(sizes.rounds):
            for probe, found in zip(probes, live, strict=True):
                cid = found[len(found) // 2]["_id"]
                number = numbers[len(numbers) // 3]
                queries = {
                    "query_by_id": f"{BASE}?_id={cid}",
                    "query_by_number": f"{BASE}?_customer_number={number}",
                    "query_by_state": f"{BASE}?_callback_state=SCHEDULED",
                    "open_list_of_service": f"{BASE}/{SERVICE}?_callback_state=!COMPLETED",
                    "events_of_callback": f"{BASE}/{SERVICE}/{cid}/events",
                }
                for kind, path in queries.items():
                    await probe.timed(kind, sizes.per_round, lambda _i, p=probe, q=path: p.call("GET", q))
                await probe.timed("capacity_check_create", sizes.per_round,
                                  lambda _i, p=probe: p.create(True))
                await probe.timed("queue_check_create", sizes.per_round, lambda _i, p=probe: p.create(False))
        summaries = [probe.summary() for probe in probes]
    result["empty"], result["history"] = summaries
    result["ratios"] = {f"{kind}_p50_history_vs_empty": ratio(summaries[1][kind]["p50_ms"],
                                                              summaries[0][kind]["p50_ms"])
                        for kind in summaries[0]}
    result["ratios"]["startup_history_vs_empty"] = ratio(result["startup_s_history"], result["startup_s_empty"])
    result["purge_query_ms"] = await purge_ms({name: workdir / name / "engine.db" for name in ("empty", "history")})
    result["ratios"]["purge_query_history_vs_empty"] = ratio(result["purge_query_ms"]["history"],
                                                             result["purge_query_ms"]["empty"])
    result["log"] = notes
    return result


async def purge_ms(paths: dict[str, Path]) -> dict[str, float]:
    """The retention purge (nothing old enough to go) on stopped engines' databases: the best of
    9 runs on each, the databases taking turns."""
    stores = {name: await persistence.open_store(f"sqlite+aiosqlite:///{path}") for name, path in paths.items()}
    best = dict.fromkeys(stores, float("inf"))
    try:
        for _ in range(9):
            for name, store in stores.items():
                began = time.perf_counter()
                await persistence.purge(store, time.time() - 30 * DAY)
                best[name] = min(best[name], time.perf_counter() - began)
        return {name: round(seconds * 1000, 3) for name, seconds in best.items()}
    finally:
        for store in stores.values():
            await store.close()


async def subscriptions(workdir: Path, quick: bool) -> dict[str, Any] | None:
    """The subscription-publish section of ``bench/scale_subscriptions.py``, when it exists."""
    path = REPO / "bench" / "scale_subscriptions.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("bench.scale_subscriptions", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = workdir / "subscriptions"
    folder.mkdir()
    return await module.run(folder, quick)


# -- main --------------------------------------------------------------------------------------

def unmet_targets(result: dict[str, Any]) -> list[str]:
    unmet = []
    ratios = {**result["live"]["ratios"], **result["history"]["ratios"],
              **((result.get("subscriptions") or {}).get("ratios") or {})}
    for name, value in ratios.items():
        if value is None or value > TARGET_RATIO:
            unmet.append(f"{name} = {value} (target <= {TARGET_RATIO})")
    if result["live"]["startup_s_at_max_live"] >= TARGET_STARTUP_SECONDS:
        unmet.append(f"start-up {result['live']['startup_s_at_max_live']} s (target < {TARGET_STARTUP_SECONDS})")
    if result["live"]["rss_per_live_callback_bytes"] > TARGET_RSS_PER_CALLBACK:
        unmet.append(f"RSS per live callback {result['live']['rss_per_live_callback_bytes']} B "
                     f"(target <= {TARGET_RSS_PER_CALLBACK})")
    return unmet


async def run(workdir: Path, quick: bool, queued: int | None = None) -> dict[str, Any]:
    sizes = Sizes(quick)
    if queued is not None:
        sizes.queued = queued
    problems = Problems()
    config = write_config(workdir)
    began = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        result: dict[str, Any] = {"bench": "scale", "quick": quick,
                                  "live": await live_load(workdir, sizes, config, client, problems),
                                  "history": await history(workdir, sizes, config, client, problems)}
    sub = await subscriptions(workdir, quick)
    if sub is not None:
        result["subscriptions"] = sub
        problems.extend(sub.get("problems", []))
    result["unmet_targets"] = unmet_targets(result)
    result["headline"] = {
        **result["live"]["ratios"], **result["history"]["ratios"],
        **{f"subscriptions_{k}": v for k, v in ((result.get("subscriptions") or {}).get("ratios") or {}).items()},
        "startup_s_at_max_live": result["live"]["startup_s_at_max_live"],
        "rss_per_live_callback_bytes": result["live"]["rss_per_live_callback_bytes"],
        "rss_per_queued_callback_bytes": result["live"]["rss_per_queued_callback_bytes"],
    }
    result["seconds"] = round(time.perf_counter() - began, 1)
    result["problems"] = list(problems)
    result["ok"] = not problems
    return result


def report(result: dict[str, Any]) -> None:
    live, hist = result["live"], result["history"]
    print("live load (creates interleaved over the engines)")
    for size, figures in live["sizes"].items():
        cells = "  ".join(f"{kind} p50 {figures[kind]['p50_ms']:.2f} ms cpu {figures[kind]['cpu_ms']:.2f} ms"
                          for kind in ("create_scheduled", "create_immediate"))
        print(f"  {int(size):>6} live: start-up {figures['startup_s']:.2f} s, RSS {figures['rss_bytes'] / 2**20:.1f}"
              f" MiB; {cells}")
    for name, value in live["ratios"].items():
        print(f"  ratio {name}: {value}")
    print(f"  start-up with {list(live['sizes'])[-1]} scheduled: {live['startup_s_at_max_live']:.2f} s; "
          f"RSS per live (scheduled) callback {live['rss_per_live_callback_bytes']} B; "
          f"per queued callback with its flow running {live['rss_per_queued_callback_bytes']} B")
    print(f"history ({hist['completed']} completed, {hist['events']} events) against an empty database")
    for kind in hist["empty"]:
        print(f"  {kind}: empty p50 {hist['empty'][kind]['p50_ms']:.2f} ms, history p50 "
              f"{hist['history'][kind]['p50_ms']:.2f} ms")
    print(f"  purge query: {hist['purge_query_ms']}")
    for name, value in hist["ratios"].items():
        print(f"  ratio {name}: {value}")
    if "subscriptions" in result:
        for name, value in (result["subscriptions"].get("ratios") or {}).items():
            print(f"  ratio subscriptions {name}: {value}")
    for unmet in result["unmet_targets"]:
        print(f"target missed: {unmet}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--queued", type=int, help="immediate callbacks whose RSS per QUEUED callback is measured "
                                                   "(default 5000, quick 300; e.g. --quick --queued 5000)")
    args = parser.parse_args()
    return asyncio.run(bench_main("scale-bench-", args.keep, lambda workdir: run(workdir, args.quick, args.queued),
                                  report,
                                  lambda _result: ()))


if __name__ == "__main__":
    sys.exit(main())
