"""Status-notification benchmark: deliveries per second to a loopback receiver, and the latency
from a flow state's entry to the receiver, next to a bare aiohttp POST loop.

Run from the repository root as ``python bench/notifications.py`` (``--quick`` for a smoke run).
In one run it

* waits until the machine is quiet (1-minute load average under ``--quiet-load`` and no other
  process using a tenth of a core), at most ``--quiet-timeout`` seconds, and says so if it was not;
* starts a loopback receiver (this file with ``--receiver``, a separate process) and a real engine
  process (persistence on, SQLite) whose simulator runs ``--time-scale`` times faster with many
  agents; three services (``warm``, ``sat``, ``paced``) notify it with ``subscribe_notify`` /
  ``httpcb``, each on its own path;
* serves the flow ``callback_timed``: a copy of ``scxml/callback.scxml`` (or of the flow ``--flow``
  names) where every ``<cb:notify>`` carries a ``t_entry`` param, the wall clock in the flow's
  datamodel (``Date.now() / 1000`` in ECMAScript, ``time.time()`` in python), reported
  through a transaction list that is the default attribute set plus ``t_entry`` on flow events. The
  message ``timestamp`` is whole seconds of the scaled engine clock; ``t_entry`` is the wall clock
  when the state's ``<onentry>`` ran, so receipt time minus ``t_entry`` is the latency through
  the commit and the dispatcher. The warm-up and paced phases run it; the saturated phase, where
  the CPU per message is measured, runs ``callback_plain``, the flow as it is, unless
  ``--timed-saturated``: the stamp is the benchmark's, not the engine's work. (It used to cost:
  until ``Date.now()`` was answered without a JavaScript context (``ecmascript/builtins.py``),
  each stamp built a context, and the saturated CPU per message was 0.53-0.68 ms against
  0.32-0.34 ms since, on a busy machine; the timed and the plain flow now cost about the same);
* warm-up: a few callbacks, to compile the flow, open the connections, learn how many messages
  one callback sends and keep real message bodies for the reference;
* saturated phase: ``--callbacks`` creates with ``--concurrency`` in flight; rate = messages /
  (last receipt - first create), and the steady rate between the 10th and 90th percentile receipts;
* paced phase: ``--paced-callbacks`` creates arriving open-loop at ``--paced-load`` times the
  saturated callback rate: the latency at a defined load rather than behind a growing backlog;
* reference: a bare aiohttp POST loop to the same receiver with the warm-up's real bodies (so the
  same payload sizes): one ``ClientSession``, 10 s total timeout, default connector, compact JSON
  by orjson per request, a ``webhook-id`` header (what the engine's dispatcher did before it had
  its own client, ``engine.notifications.webhook_client``; kept as the issue's yardstick), at the
  concurrency the engine's dispatcher reached (the connections it used in the saturated phase,
  unless ``--ref-concurrency``); once after each engine phase;
* engine CPU per delivered message next to the bare loop's CPU per request (this process's CPU
  over a reference round; the best round) and their ratio;
* checks that every status event each callback recorded (``GET .../events``) arrived exactly once
  per ``webhook-id``, in order, with ``t_entry`` on flow events; any shortfall, stranger or
  duplicate fails the run, and duplicates are counted on their own.

Why the receiver is a separate process: the benchmark process drives the creates and polls; a
receiver on its event loop would stamp receipts late whenever create answers were being handled
(inflating the latency), and in the reference round client and server would share one core while
the engine's client has its own process. With the receiver apart, both senders (the engine and the
bare loop) are in another process than the receiver, and its timestamps are its own.

The last line of output is one JSON object with every figure; the exit code is 1 when a check
failed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import sys
import time
import uuid
from collections import Counter
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    DISTURBED,
    HEADERS,
    QUEUE,
    BenchFailed,
    bench_main,
    kind_notes,
    line_kinds,
    managed_engine,
    print_engine_stop,
    ratio,
    read_log,
    run_result,
    server_process,
    simulator_toml,
)
from bench.httpload import (  # noqa: E402
    Cpu,
    LoadResult,
    drive,
    paced,
    quantile,
    wait_machine_quiet,
    wait_quiet,
    write_syscalls,
)
from engine.callbacks.event_catalog import ALL_EVENTS, FLOW_EVENTS  # noqa: E402
from tests.support.engine_process import ADMIN_KEY, EngineProcess  # noqa: E402

BASE = "/genesys/1/service/callback"
FLOW = "callback_timed"
PLAIN_FLOW = "callback_plain"  # the flow untouched: the saturated phase's, unless --timed-saturated
EVENTS_LIST = "bench_timed"
PHASES = ("warm", "sat", "paced")
#: No limit may refuse a create and no TTL may end a callback; every dial answers at once.
SERVICE_OPTIONS = {
    "_service": FLOW, "_urs_virtual_queue": QUEUE, "_wait_for_agent": True, "_max_dial_attempts": 1,
    "_max_queued_callbacks_per_service": 10_000_000, "_max_request_by_time_bucket": 10_000_000,
    "_ttl": 10_000_000, "_enable_status_notification": "subscribe_notify",
    "_status_notification_type": "httpcb", "_callback_events_list": EVENTS_LIST,
}
NOTIFY = re.compile(r'<cb:notify event="([^"]+)"\s*/>')
#: The wall clock in seconds, in the flow's datamodel (the default flow is ECMAScript).
T_ENTRY = {"ecmascript": '<param name="t_entry" expr="Date.now() / 1000"/>',
           "python": '<param name="t_entry" expr="__import__(\'time\').time()"/>'}
DATAMODEL = re.compile(r'<scxml\b[^>]*\bdatamodel="([^"]+)"')
#: Receiver row: receipt wall time, webhook-id, callback id, event id, t_entry, body bytes, peer port.
T, WID, CID, EVENT, ENTRY, SIZE, PEER = range(7)
SAMPLES = 600
#: Engine log lines that every start and stop writes; anything else is reported.
LOG_ROUTINE = re.compile(r"^callback engine on http|engine ready|engine stopped|flow \S+ version \d+ registered|"
                         r"schema migrat|applying schema migration|restored 0 sessions, 0 events in flight, "
                         r"0 pending effects|callback service: 0 open callbacks restored")


@dataclass(frozen=True)
class Settings:
    """Counts, speeds and concurrency of one run."""

    quick: bool
    callbacks: int
    paced_callbacks: int
    paced_load: float
    concurrency: int
    reference: int
    ref_concurrency: int  # 0: the engine's measured connection count
    warmup: int
    time_scale: float
    agents: int
    stall: float
    quiet_load: float
    quiet_timeout: float
    keep: bool
    flow: str = "callback"
    timed_saturated: bool = False  # the saturated phase runs the timed flow (its latency, at a CPU cost)


# -- the receiver (its own process) -----------------------------------------------------------

@dataclass
class Inbox:
    """What arrived, per path; rows stay compact lists so a dump of 100k is cheap."""

    rows: dict[str, list[list[Any]]] = field(default_factory=dict)
    ids: dict[str, set[str]] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)


def receiver_app(inbox: Inbox) -> web.Application:
    """POST anywhere under ``/hook/`` records; ``/stats`` counts; ``/dump`` hands everything over.

    Every body is parsed as a real receiver would, for the engine and the reference alike.
    """
    async def hook(request: web.Request) -> web.Response:
        now = time.time()
        raw = await request.read()
        body = json.loads(raw)
        message = body.get("message", body) if isinstance(body, dict) else {}
        wid = request.headers.get("webhook-id", "")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        path = request.path
        inbox.rows.setdefault(path, []).append([now, wid, message.get("_service_id"), message.get("event_id"),
                                                message.get("t_entry"), len(raw), peer[1] if peer else 0])
        inbox.ids.setdefault(path, set()).add(wid)
        samples = inbox.samples.setdefault(path, [])
        if len(samples) < SAMPLES:
            samples.append(raw.decode())
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        path = request.query["path"]
        return web.json_response({"received": len(inbox.rows.get(path, [])), "distinct": len(inbox.ids.get(path, ()))})

    async def dump(request: web.Request) -> web.Response:
        path = request.query["path"]
        return web.json_response({"rows": inbox.rows.get(path, []), "samples": inbox.samples.get(path, [])})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=2**20)
    app.router.add_post("/hook/{tail:.*}", hook)
    app.router.add_get("/stats", stats)
    app.router.add_get("/dump", dump)
    app.router.add_get("/health", health)
    return app


def serve_receiver(port: int) -> None:
    """Serve on loopback until terminated; no access log, like the engine."""
    web.run_app(receiver_app(Inbox()), host="127.0.0.1", port=port, print=None, access_log=None)


# -- configuration ----------------------------------------------------------------------------

def timed_flow(source: str) -> str:
    """The default flow with ``t_entry`` (wall clock) on every ``<cb:notify>``; refuses a changed shape."""
    total = len(re.findall(r"<cb:notify\s", source))  # elements, not the comment naming them
    found = DATAMODEL.search(source)
    entry = T_ENTRY.get(found.group(1) if found else "")
    if entry is None:
        raise BenchFailed(f"the flow: no wall clock known for datamodel {found and found.group(1)!r}")
    text, replaced = NOTIFY.subn(lambda m: f'<cb:notify event="{m.group(1)}">{entry}</cb:notify>', source)
    if replaced == 0 or replaced != total:
        raise BenchFailed(f"the flow: only {replaced} of {total} <cb:notify> elements could be timed")
    return text


def events_list() -> str:
    """A transaction list reporting every status event with its default attributes, plus ``t_entry``.

    Without a list only the default attributes are sent, so ``t_entry`` would be dropped.
    """
    lines = ["# bench/notifications.py: the default attribute set, plus t_entry on flow events"]
    for name, attrs in ALL_EVENTS.items():
        params = [*attrs, "t_entry"] if name in FLOW_EVENTS else list(attrs)
        lines += [f"[{name}]", "notify_params = " + ", ".join(params)]
    return "\n".join(lines) + "\n"


def write_setup(root: Path, settings: Settings, receiver: str) -> tuple[Path, Path]:
    """Config folder (simulator, one service per phase, the list) and a flows folder with the timed flow."""
    config, flows = root / "config", root / "flows"
    for folder in (config / "services", config / "business-hours", config / "transaction-lists", flows):
        folder.mkdir(parents=True, exist_ok=True)
    (config / "simulator.toml").write_text(simulator_toml(settings.time_scale, settings.agents))
    (config / "transaction-lists" / f"{EVENTS_LIST}.cfg").write_text(events_list())
    # The receiver is on loopback, which the outbound URL policy refuses unless allowed.
    (config / "notifications.json").write_text(json.dumps({"allowed_networks": ["127.0.0.0/8"]}))
    for phase in PHASES:
        options = {**SERVICE_OPTIONS, "_service": phase_flow(phase, settings),
                   "_status_notification_target": f"{receiver}/hook/{phase}"}
        (config / "services" / f"bench_{phase}.json").write_text(json.dumps(options))
    source = (REPO / "scxml" / f"{settings.flow}.scxml").read_text()
    (flows / f"{FLOW}.scxml").write_text(timed_flow(source))
    (flows / f"{PLAIN_FLOW}.scxml").write_text(source)
    return config, flows


def phase_flow(phase: str, settings: Settings) -> str:
    """The flow a phase's callbacks run: the timed one, but for the saturated phase unless asked."""
    return PLAIN_FLOW if phase == "sat" and not settings.timed_saturated else FLOW


# -- processes --------------------------------------------------------------------------------

def receiver_running(client: aiohttp.ClientSession, workdir: Path) -> AbstractAsyncContextManager[tuple[str, int]]:
    """The receiver as a subprocess; yields its URL and pid."""
    return server_process(client, workdir, Path(__file__).resolve(), "receiver", "--receiver")


def engine_running(workdir: Path, config: Path, flows: Path,
                   record: dict[str, Any]) -> AbstractAsyncContextManager[EngineProcess]:
    """A fresh persisting engine; on exit a graceful stop, and what its log said."""
    engine = EngineProcess(workdir / "data", flows, config_dir=str(config), persistence="true")
    return managed_engine(engine, record, log_findings)


async def check_flow(client: aiohttp.ClientSession, engine: EngineProcess,
                     names: tuple[str, ...] = (FLOW, PLAIN_FLOW)) -> None:
    """The engine accepted the flows ``names`` (a refused document would fail every create later,
    obscurely): here the timed and the untouched one; bench/latency.py writes the timed one only."""
    async with client.get(f"{engine.url}/admin/flows", headers={"x-api-key": ADMIN_KEY}) as response:
        text = await response.text()
    for flow in names:
        if response.status != 200 or flow not in text:
            raise BenchFailed(f"the engine did not register {flow}: {response.status} {text[:300]}\n{engine.log()}")


def log_findings(path: Path) -> dict[str, Any]:
    """Line counts by level, and everything beyond start and stop grouped by kind (retries, errors...)."""
    lines = read_log(path)
    if lines is None:
        return {"log_lines": 0}
    levels = Counter(m.group(1) for line in lines if (m := re.search(r"\b(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b", line)))
    unusual = [line for line in lines if not LOG_ROUTINE.search(line)]
    return {"log_lines": len(lines), "log_levels": dict(levels), "log_unusual_count": len(unusual),
            "log_unusual_kinds": line_kinds(unusual), "log_unusual_first": unusual[:10],
            "log_delivery_retries": sum("attempt" in line and "failed" in line for line in lines),
            "log_dead_letters": sum("dead after" in line for line in lines),
            "log_tracebacks": sum("Traceback" in line for line in lines)}


# -- measuring --------------------------------------------------------------------------------

class Usage(Cpu):
    """CPU and write calls of the engine, the receiver, this process and everyone else over one stretch."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(pids)
        self.began_writes = {role: write_syscalls(pid) for role, pid in self.pids.items()}

    def figures(self) -> dict[str, float]:
        """Shares of one core and CPU seconds; ``foreign`` is what none of our processes used."""
        use = self.used()
        out = use.shares()
        out.update({f"{role}_cpu_seconds": round(value, 3) for role, value in use.seconds.items()})
        out.update({f"{role}_write_syscalls": write_syscalls(pid) - self.began_writes[role]
                    for role, pid in self.pids.items()})
        return out


async def create_callbacks(client: aiohttp.ClientSession, engine_url: str, service: str, count: int, first: int,
                           concurrency: int, rate: float | None = None) -> tuple[LoadResult, list[str]]:
    """Create ``count`` immediate callbacks (closed loop, or open loop at ``rate``); ids in order."""
    ids = [""] * count
    failures: list[str] = []
    url = f"{engine_url}{BASE}/{service}"

    async def one(index: int) -> int:
        body = json.dumps({"_customer_number": f"+1555{9_000_000 + first + index:07d}"}).encode()
        async with client.post(url, data=body, headers=HEADERS) as response:
            raw = await response.read()
            if response.status == 200:
                ids[index] = json.loads(raw)["_id"]
            else:
                failures.append(f"{response.status}: {raw[:200].decode(errors='replace')}")
            return response.status

    result = await (paced(count, rate, one) if rate else drive(count, concurrency, one))
    result.failures.extend(failures)
    return result, [cid for cid in ids if cid]


async def receiver_stats(client: aiohttp.ClientSession, receiver: str, path: str) -> dict[str, int]:
    """How many requests and distinct webhook-ids reached ``path``."""
    async with client.get(f"{receiver}/stats", params={"path": path}) as response:
        return await response.json()


async def wait_delivered(client: aiohttp.ClientSession, receiver: str, path: str, expected: int | None,
                         stall: float) -> dict[str, Any]:
    """Until ``expected`` distinct messages arrived, or (``None``) the count held still for a second.

    No progress for ``stall`` seconds ends the wait too; the verification then names what is missing.
    """
    began = time.monotonic()
    last, changed = -1, time.monotonic()
    settle = 1.0 if expected is None else stall
    while True:
        distinct = (await receiver_stats(client, receiver, path))["distinct"]
        if distinct != last:
            last, changed = distinct, time.monotonic()
        if expected is not None and distinct >= expected:
            return {"stalled": False, "distinct": distinct, "waited_s": round(time.monotonic() - began, 2)}
        if time.monotonic() - changed > settle:
            return {"stalled": expected is not None, "distinct": distinct,
                    "waited_s": round(time.monotonic() - began, 2)}
        await asyncio.sleep(0.05)


async def wait_completed(client: aiohttp.ClientSession, engine_url: str, service: str, timeout: float) -> None:
    """Until no callback of ``service`` is open (the engine's list query)."""
    deadline = time.monotonic() + timeout
    url = f"{engine_url}{BASE}/bench_{service}?_callback_state=!COMPLETED"
    while time.monotonic() < deadline:
        async with client.get(url, headers=HEADERS) as response:
            raw = await response.read()
            if response.status != 200:
                raise BenchFailed(f"open-callback poll: {response.status} {raw[:200]!r}")
        if raw.strip() == b"[]":
            return
        await asyncio.sleep(0.1)
    raise BenchFailed(f"callbacks of bench_{service} still open after {timeout:g} s")


@dataclass
class Phase:
    """One batch of callbacks and what the receiver got for them."""

    name: str
    timed: bool  # its flow stamps t_entry
    ids: list[str]
    began_wall: float
    creates: LoadResult
    wait: dict[str, Any]
    cpu: dict[str, float]
    rows: list[list[Any]]
    samples: list[str]


async def dump(client: aiohttp.ClientSession, receiver: str, path: str) -> tuple[list[list[Any]], list[str]]:
    """Everything the receiver recorded at ``path``."""
    async with client.get(f"{receiver}/dump", params={"path": path}) as response:
        body = await response.json()
    return body["rows"], body["samples"]


async def run_phase(client: aiohttp.ClientSession, engine: EngineProcess, receiver: tuple[str, int], name: str,
                    count: int, first: int, settings: Settings, per_callback: int | None,
                    rate: float | None = None) -> Phase:
    """Create the callbacks, then wait until their messages are in; the engine starts idle."""
    assert engine.proc is not None
    await wait_quiet(engine.proc.pid, timeout=60.0)
    cpu = Usage({"engine": engine.proc.pid, "receiver": receiver[1]})
    began = time.time()
    creates, ids = await create_callbacks(client, engine.url, f"bench_{name}", count, first,
                                          settings.concurrency, rate)
    expected = None if per_callback is None else len(ids) * per_callback
    if per_callback is None:
        await wait_completed(client, engine.url, name, timeout=60.0)
    wait = await wait_delivered(client, receiver[0], f"/hook/{name}", expected, settings.stall)
    figures = cpu.figures()
    rows, samples = await dump(client, receiver[0], f"/hook/{name}")
    return Phase(name, phase_flow(name, settings) == FLOW, ids, began, creates, wait, figures, rows, samples)


def first_receipts(rows: list[list[Any]]) -> list[list[Any]]:
    """The first arrival of each webhook-id, in arrival order (later ones are duplicates)."""
    seen: set[str] = set()
    out = []
    for row in sorted(rows, key=lambda r: r[T]):
        if row[WID] not in seen:
            seen.add(row[WID])
            out.append(row)
    return out


def latency_figures(rows: list[list[Any]]) -> dict[str, Any]:
    """State entry to receipt, in ms, overall and per flow event (p50)."""
    per_event: dict[str, list[float]] = {}
    for row in rows:
        if isinstance(row[ENTRY], int | float):
            per_event.setdefault(row[EVENT], []).append(1000 * (row[T] - row[ENTRY]))
    every = sorted(v for values in per_event.values() for v in values)
    return {
        "samples": len(every), "p50_ms": round(quantile(every, 0.50), 2), "p90_ms": round(quantile(every, 0.90), 2),
        "p99_ms": round(quantile(every, 0.99), 2), "max_ms": round(every[-1], 2) if every else 0.0,
        "min_ms": round(every[0], 2) if every else 0.0,
        "p50_ms_by_event": {name: round(quantile(sorted(v), 0.5), 2) for name, v in per_event.items()},
    }


def phase_figures(phase: Phase) -> dict[str, Any]:
    """Rates, latency, connections and CPU of one phase, from the receiver's own timestamps."""
    first = first_receipts(phase.rows)
    times = [row[T] for row in first]
    span = (times[-1] - phase.began_wall) if times else 0.0
    low, high = int(0.1 * len(times)), int(0.9 * len(times))
    steady_span = times[high] - times[low] if len(times) > 10 else 0.0
    sizes = [row[SIZE] for row in phase.rows]
    return {
        "flow": FLOW if phase.timed else PLAIN_FLOW,
        "callbacks": len(phase.ids), "messages": len(first), "receipts": len(phase.rows),
        "seconds": round(span, 3),
        "notifications_per_second": round(len(first) / span, 1) if span > 0 else None,
        "notifications_per_second_steady": round((high - low) / steady_span, 1) if steady_span > 0 else None,
        "callbacks_per_second": round(len(phase.ids) / span, 1) if span > 0 else None,
        "create": phase.creates.summary(), "wait": phase.wait,
        "latency_from_state_entry": latency_figures(first) if phase.timed else None,
        "engine_connections_used": len({row[PEER] for row in phase.rows}),
        "body_bytes_mean": round(sum(sizes) / len(sizes), 1) if sizes else 0.0, "cpu": phase.cpu,
        "engine_cpu_ms_per_message": round(1000 * phase.cpu["engine_cpu_seconds"] / max(1, len(first)), 3),
        "engine_write_syscalls_per_message": round(phase.cpu["engine_write_syscalls"] / max(1, len(first)), 2),
        "disturbed": max(phase.cpu["foreign_cpu_share"], phase.cpu["steal_share"]) > DISTURBED,
    }


# -- the reference ----------------------------------------------------------------------------

async def reference_round(receiver: tuple[str, int], path: str, bodies: list[dict[str, Any]], count: int,
                          concurrency: int) -> dict[str, Any]:
    """A bare POST loop doing what the engine's dispatcher does per delivery, minus the storage.

    aiohttp's client as the engine's dispatcher used it before its own client (one session, 10 s
    total timeout, default connector), the same serialisation (orjson) and headers, the warm-up's
    real bodies.
    Connections are opened by an untimed first batch: the engine's were warm too.
    """
    url = f"{receiver[0]}{path}"

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0)) as session:
        async def one(index: int) -> int:
            body = orjson.dumps(bodies[index % len(bodies)])
            headers = {"Content-Type": "application/json", "webhook-id": f"msg_{uuid.uuid4().hex}"}
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status

        await drive(concurrency * 4, concurrency, one)
        cpu = Usage({"receiver": receiver[1]})
        result = await drive(count, concurrency, one)
        figures = cpu.figures()
    return {"concurrency": concurrency, **result.summary(), "cpu": figures,
            "cpu_ms_per_message": round(1000 * figures["client_cpu_seconds"] / max(1, result.requests), 3),
            "disturbed": max(figures["foreign_cpu_share"], figures["steal_share"]) > DISTURBED}


def check_reference(rows: list[list[Any]], rounds: list[dict[str, Any]], problems: list[str]) -> dict[str, Any]:
    """Every reference request arrived once; the bodies' size next to the engine's."""
    expected = sum(r["requests"] + 4 * r["concurrency"] for r in rounds)
    distinct = len({row[WID] for row in rows})
    if distinct != expected or len(rows) != expected:
        problems.append(f"reference: receiver got {len(rows)} requests, {distinct} distinct, of {expected} sent")
    for r in rounds:
        if r["ok"] != r["requests"]:
            problems.append(f"reference: {r['requests'] - r['ok']} of {r['requests']} failed {r['statuses']}")
    sizes = [row[SIZE] for row in rows]
    return {"received": len(rows), "distinct": distinct, "expected": expected,
            "body_bytes_mean": round(sum(sizes) / len(sizes), 1) if sizes else 0.0}


# -- verification -----------------------------------------------------------------------------

async def recorded_events(client: aiohttp.ClientSession, engine_url: str, service: str, ids: list[str],
                          concurrency: int) -> tuple[dict[str, list[str]], LoadResult]:
    """The status events each callback recorded, in order: what the receiver must have got."""
    out: dict[str, list[str]] = {}

    async def one(index: int) -> int:
        url = f"{engine_url}{BASE}/bench_{service}/{ids[index]}/events"
        async with client.get(url, headers=HEADERS) as response:
            if response.status == 200:
                out[ids[index]] = [event["event_id"] for event in await response.json()]
            return response.status

    return out, await drive(len(ids), concurrency, one)


def verify(phase: Phase, recorded: dict[str, list[str]], problems: list[str]) -> dict[str, Any]:
    """Each recorded event arrived exactly once per webhook-id, in order; a flow event with ``t_entry``
    when the phase's flow is the timed one, without when it is the plain one."""
    receipts = Counter(row[WID] for row in phase.rows)
    duplicates = sum(n - 1 for n in receipts.values())
    got: dict[str, list[str]] = {}
    for row in first_receipts(phase.rows):
        got.setdefault(row[CID], []).append(row[EVENT])
    missing = unexpected = out_of_order = 0
    for cid in phase.ids:
        expected, have = recorded.get(cid, []), got.pop(cid, [])
        missing += sum((Counter(expected) - Counter(have)).values())
        unexpected += sum((Counter(have) - Counter(expected)).values())
        out_of_order += Counter(expected) == Counter(have) and expected != have
    strangers = sum(len(v) for v in got.values())
    stamped = [isinstance(row[ENTRY], int | float) for row in phase.rows if row[EVENT] in FLOW_EVENTS]
    untimed = stamped.count(False) if phase.timed else 0
    timed_by_mistake = 0 if phase.timed else stamped.count(True)
    no_id = sum(1 for row in phase.rows if not str(row[WID]).startswith("msg_"))
    figures = {"expected": sum(len(recorded.get(cid, [])) for cid in phase.ids), "missing": missing,
               "unexpected": unexpected, "strangers": strangers, "duplicates": duplicates,
               "duplicate_webhook_ids": sum(1 for n in receipts.values() if n > 1),
               "out_of_order_callbacks": out_of_order,
               "flow_events_without_t_entry": untimed, "plain_flow_events_with_t_entry": timed_by_mistake,
               "without_webhook_id": no_id,
               "events_not_fetched": len(phase.ids) - len(recorded)}
    bad = {k: v for k, v in figures.items() if k != "expected" and v}
    if bad:
        problems.append(f"{phase.name}: delivery check failed {bad} (of {figures['expected']} expected messages)")
    return figures


async def verify_phase(client: aiohttp.ClientSession, engine: EngineProcess, phase: Phase, settings: Settings,
                       problems: list[str]) -> dict[str, Any]:
    """Fetch the recorded events of the phase's callbacks and hold the receipts against them."""
    recorded, fetched = await recorded_events(client, engine.url, phase.name, phase.ids, settings.concurrency)
    if fetched.ok != fetched.requests:
        problems.append(f"{phase.name}: {fetched.requests - fetched.ok} event fetches failed {dict(fetched.statuses)}")
    if phase.creates.ok != phase.creates.requests:
        problems.append(f"{phase.name}: {phase.creates.requests - phase.creates.ok} creates failed "
                        f"{dict(phase.creates.statuses)}: {phase.creates.failures[:3]}")
    await wait_completed(client, engine.url, phase.name, timeout=5.0)
    return verify(phase, recorded, problems)


def per_callback_count(phase: Phase, problems: list[str]) -> int:
    """Messages one callback sends in this set-up (all callbacks follow the same path)."""
    counts = Counter(Counter(row[CID] for row in first_receipts(phase.rows)).values())
    if not counts:
        raise BenchFailed("warm-up: no notification reached the receiver")
    if len(counts) > 1:
        problems.append(f"warm-up: callbacks sent different numbers of messages {dict(counts)}")
    return counts.most_common(1)[0][0]


# -- the run ----------------------------------------------------------------------------------

async def measure(client: aiohttp.ClientSession, engine: EngineProcess, receiver: tuple[str, int],
                  settings: Settings, problems: list[str]) -> dict[str, Any]:
    """Warm-up, saturated phase, reference, paced phase, reference, then every delivery checked."""
    await check_flow(client, engine)
    warm = await run_phase(client, engine, receiver, "warm", settings.warmup, 0, settings, None)
    per_callback = per_callback_count(warm, problems)
    bodies = [json.loads(raw) for raw in warm.samples]
    sat = await run_phase(client, engine, receiver, "sat", settings.callbacks, settings.warmup, settings, per_callback)
    sat_figures = phase_figures(sat)
    concurrency = settings.ref_concurrency or max(1, min(100, sat_figures["engine_connections_used"]))
    assert engine.proc is not None
    await wait_quiet(engine.proc.pid, timeout=60.0)
    rounds = [await reference_round(receiver, "/hook/ref", bodies, settings.reference, concurrency)]
    rate = settings.paced_load * (sat_figures["callbacks_per_second"] or 1.0)
    paced_phase = await run_phase(client, engine, receiver, "paced", settings.paced_callbacks,
                                  settings.warmup + settings.callbacks, settings, per_callback, rate)
    await wait_quiet(engine.proc.pid, timeout=60.0)
    rounds.append(await reference_round(receiver, "/hook/ref", bodies, settings.reference, concurrency))
    ref_rows, _ = await dump(client, receiver[0], "/hook/ref")
    checks = {phase.name: await verify_phase(client, engine, phase, settings, problems)
              for phase in (warm, sat, paced_phase)}
    return {
        "per_callback_messages": per_callback, "reference_concurrency": concurrency,
        "saturated": sat_figures,
        "paced": {**phase_figures(paced_phase), "target_callbacks_per_second": round(rate, 1)},
        "warmup": phase_figures(warm), "reference_rounds": rounds,
        "reference_check": check_reference(ref_rows, rounds, problems), "delivery_checks": checks,
    }


def headline(figures: dict[str, Any], quiet: dict[str, Any]) -> dict[str, Any]:
    """The figures a reader wants first."""
    sat, paced_f = figures.get("saturated", {}), figures.get("paced", {})
    rates = [r["rate"] for r in figures.get("reference_rounds", [])]
    reference = max(rates) if rates else None
    ref_cpu = min((r["cpu_ms_per_message"] for r in figures.get("reference_rounds", [])), default=None)
    checks = figures.get("delivery_checks", {}).values()
    disturbed = [name for name, part in (("saturated", sat), ("paced", paced_f)) if part.get("disturbed")]
    disturbed += [f"reference {i + 1}" for i, r in enumerate(figures.get("reference_rounds", [])) if r["disturbed"]]
    sat_lat, paced_lat = sat.get("latency_from_state_entry") or {}, paced_f.get("latency_from_state_entry") or {}
    return {
        "notifications_per_second": sat.get("notifications_per_second"),
        "notifications_per_second_steady": sat.get("notifications_per_second_steady"),
        "callbacks_per_second": sat.get("callbacks_per_second"),
        "reference_rate": reference, "reference_rates": rates,
        "ratio_vs_reference": ratio(sat.get("notifications_per_second"), reference),
        "ratio_steady_vs_reference": ratio(sat.get("notifications_per_second_steady"), reference),
        "latency_saturated_ms_p50": sat_lat.get("p50_ms"), "latency_saturated_ms_p99": sat_lat.get("p99_ms"),
        "latency_paced_ms_p50": paced_lat.get("p50_ms"), "latency_paced_ms_p99": paced_lat.get("p99_ms"),
        "paced_notifications_per_second": paced_f.get("notifications_per_second"),
        "engine_cpu_ms_per_message_saturated": sat.get("engine_cpu_ms_per_message"),
        "saturated_flow": sat.get("flow"),
        "engine_cpu_ms_per_message_paced": paced_f.get("engine_cpu_ms_per_message"),
        "reference_cpu_ms_per_message": ref_cpu,
        "cpu_ratio_saturated_vs_reference": ratio(sat.get("engine_cpu_ms_per_message"), ref_cpu, 2),
        "messages_checked": sum(c["expected"] for c in checks),
        "missing": sum(c["missing"] for c in checks), "duplicates": sum(c["duplicates"] for c in checks),
        "engine_connections_used": sat.get("engine_connections_used"),
        "reference_concurrency": figures.get("reference_concurrency"),
        "machine_busy": not quiet.get("quiet_at_start", False) or bool(disturbed), "disturbed_parts": disturbed,
    }


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Quiet machine, receiver and engine side by side; a failed check ends the phases, not the report."""
    problems: list[str] = []
    quiet = await wait_machine_quiet(settings.quiet_load, settings.quiet_timeout)
    began = time.perf_counter()
    record: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=settings.concurrency + 16)
    try:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)))
            receiver = await stack.enter_async_context(receiver_running(client, workdir))
            config, flows = write_setup(workdir, settings, receiver[0])
            engine = await stack.enter_async_context(engine_running(workdir, config, flows, record))
            figures = await measure(client, engine, receiver, settings, problems)
    except RuntimeError as exc:  # BenchFailed, or an engine that did not come up
        problems.append(f"{type(exc).__name__}: {exc}")
    return run_result(figures, headline(figures, quiet), record, quiet, asdict(settings), began, problems)


# -- report and CLI ---------------------------------------------------------------------------

def print_report(result: dict[str, Any]) -> None:
    """A readable summary before the JSON line."""
    s, h = result["settings"], result["headline"]
    print(f"notification benchmark: {s['callbacks']} + {s['paced_callbacks']} paced callbacks, concurrency "
          f"{s['concurrency']}, time scale {s['time_scale']:g}, persistence on, Python {result['python']}, "
          f"{result['cpus']} CPUs{'  [quick]' if s['quick'] else ''}")
    if "saturated" not in result:
        return
    sat, paced_f = result["saturated"], result["paced"]
    print(f"  notifications/s (saturated)  : {h['notifications_per_second']} whole phase, "
          f"{h['notifications_per_second_steady']} steady (10-90 %); {sat['messages']} messages from "
          f"{sat['callbacks']} callbacks ({result['per_callback_messages']} each) in {sat['seconds']} s, "
          f"{h['callbacks_per_second']} callbacks/s")
    print(f"  bare aiohttp POST loop       : {h['reference_rate']}/s (rounds {h['reference_rates']}, concurrency "
          f"{h['reference_concurrency']}; the engine's client used {h['engine_connections_used']} connections)")
    print(f"  ours / bare                  : {h['ratio_vs_reference']} (steady {h['ratio_steady_vs_reference']})")
    print(f"  CPU per message              : engine {h['engine_cpu_ms_per_message_saturated']} ms (saturated, "
          f"{h['saturated_flow']}), "
          f"bare POST loop {h['reference_cpu_ms_per_message']} ms; engine / bare "
          f"{h['cpu_ratio_saturated_vs_reference']}")
    for label, part in (("saturated", sat), ("paced", paced_f)):
        lat = part["latency_from_state_entry"]
        if lat is None:
            print(f"  state entry -> receiver ({label:9}): not measured ({part['flow']} carries no t_entry; "
                  f"--timed-saturated measures it)")
            continue
        print(f"  state entry -> receiver ({label:9}): p50 {lat['p50_ms']} ms, p90 {lat['p90_ms']} ms, "
              f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms over {lat['samples']} flow events")
    print(f"  paced phase: {paced_f['target_callbacks_per_second']} callbacks/s offered, "
          f"{paced_f['notifications_per_second']} notifications/s")
    print(f"  bodies: engine {sat['body_bytes_mean']} B mean, "
          f"reference {result['reference_check']['body_bytes_mean']} B")
    print(f"  delivery check: {h['messages_checked']} messages, missing {h['missing']}, duplicates {h['duplicates']}")
    for label, part in (("saturated", sat), ("paced", paced_f)):
        cpu = part["cpu"]
        print(f"  CPU {label:9} (cores): engine {cpu['engine_cpu_share']} ({part['engine_cpu_ms_per_message']} ms and "
              f"{part['engine_write_syscalls_per_message']} write calls per message), receiver "
              f"{cpu['receiver_cpu_share']}, bench client {cpu['client_cpu_share']}, others "
              f"{cpu['foreign_cpu_share']}, steal {cpu['steal_share']}")
    print_engine_stop(result, "the figures are low",
                      f", {result['engine_process'].get('log_delivery_retries')} delivery retries")


def settings_from(argv: list[str] | None) -> Settings:
    """Parse the CLI; ``--quick`` shrinks every count not given explicitly."""
    parser = argparse.ArgumentParser(description="status-notification benchmark against a bare aiohttp POST loop")
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, a few seconds")
    parser.add_argument("--callbacks", type=int, help="callbacks in the saturated phase (default 1500, quick 100)")
    parser.add_argument("--paced-callbacks", type=int, help="callbacks in the paced phase (default 600, quick 60)")
    parser.add_argument("--paced-load", type=float, default=0.5,
                        help="paced arrival rate as a share of the saturated callback rate (default 0.5)")
    parser.add_argument("--concurrency", type=int, default=32, help="create requests in flight (default 32)")
    parser.add_argument("--reference", type=int, help="bare POSTs per reference round (default 15000, quick 2000)")
    parser.add_argument("--ref-concurrency", type=int, default=0,
                        help="POSTs in flight in the reference (default: the connections the engine used)")
    parser.add_argument("--warmup", type=int, help="untimed callbacks first (default 40, quick 10)")
    parser.add_argument("--time-scale", type=float, default=2000.0, help="simulator time scale (default 2000)")
    parser.add_argument("--agents", type=int, default=300, help=f"agents in {QUEUE} (default 300)")
    parser.add_argument("--stall", type=float, default=20.0, help="seconds without a new message before giving up")
    parser.add_argument("--quiet-load", type=float, default=1.0, help="1-minute load average counted as quiet")
    parser.add_argument("--quiet-timeout", type=float,
                        help="seconds to wait for a quiet machine (default 600, quick 0: just note it)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (engine log, database)")
    parser.add_argument("--flow", default="callback",
                        help="the flow of scxml/ timed and run (default callback, the ECMAScript one; "
                             "callback-python for the python datamodel)")
    parser.add_argument("--timed-saturated", action="store_true",
                        help="the saturated phase runs the timed flow too: its latency from state entry, "
                             "with the stamps' cost in its CPU figure")
    args = parser.parse_args(argv)

    def pick(value: int | None, full: int, quick: int) -> int:
        return max(1, value if value is not None else (quick if args.quick else full))

    return Settings(
        quick=args.quick, callbacks=pick(args.callbacks, 1500, 100),
        paced_callbacks=pick(args.paced_callbacks, 600, 60),
        paced_load=max(0.01, args.paced_load), concurrency=max(1, args.concurrency),
        reference=pick(args.reference, 15_000, 2000), ref_concurrency=max(0, args.ref_concurrency),
        warmup=pick(args.warmup, 40, 10), time_scale=args.time_scale, agents=max(1, args.agents),
        stall=max(1.0, args.stall), quiet_load=args.quiet_load,
        quiet_timeout=args.quiet_timeout if args.quiet_timeout is not None else (0.0 if args.quick else 600.0),
        keep=args.keep, flow=args.flow, timed_saturated=args.timed_saturated,
    )


async def main(argv: list[str] | None = None) -> int:
    """Run, print the summary, log findings and problems on stderr, and the JSON line last; 1 on any problem."""
    settings = settings_from(argv)
    return await bench_main("bench-notifications-", settings.keep, functools.partial(run, settings), print_report,
                            lambda result: kind_notes(result["engine_process"].get("log_unusual_kinds", {})))


if __name__ == "__main__":
    if "--receiver" in sys.argv:
        serve_receiver(int(sys.argv[sys.argv.index("--port") + 1]))
    else:
        sys.exit(asyncio.run(main()))
