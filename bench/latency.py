"""Latency under load: create -> first status notification, and ``_desired_time`` -> first dial,
at set shares of the engine's measured maximum rate, next to a bare aiohttp server at the same rates.

Run from the repository root as ``python bench/latency.py`` (``--quick`` for a smoke run of seconds).
In one run it

* starts a loopback notification receiver (``bench/notifications.py --receiver``: its own process,
  stamping each receipt with its own clock), the bare reference server (``bench/bare_server.py``)
  and a real engine process (persistence on: SQLite in a fresh data folder) serving
  ``callback_timed``: the default flow with the wall clock of each state's entry (``t_entry``) on
  every status event, reported through the transaction list of ``bench/notifications.py``;
* runs the engine clock at time scale 1 and shortens the simulated calls instead (``--shorten``,
  default 2000: a call lasts as long in real time as in ``bench/callbacks.py``). ``_desired_time``,
  ``t_entry``, the receiver's stamps and this process's send times are then readings of one and the
  same wall clock, and every figure is real milliseconds with no scaled clock to convert;
* warm-up: immediate and scheduled callbacks, to learn how many messages each kind sends;
* the former maximum, for comparison: ``--saturate`` immediate callbacks created closed-loop with
  ``--concurrency`` in flight, callbacks / (first create sent -> last of their notifications
  received), the method of ``bench/callbacks.py`` with the deliveries included. It is not the
  maximum the levels are shares of: their load is a different one (half of it scheduled, which
  costs more per callback), and 90 % of this figure was more than the engine could carry of it;
* the maximum rate: the highest rate of the levels' own load that the engine kept up with, found by
  open-loop probes of ``--probe-seconds`` each (the same stream a level sends, below, and the same
  ``kept_up`` verdict a level gets). The first probe runs at 85 % of the former maximum (50/s
  without it); while every probe kept up the next is 1.25 times the fastest, while none did it is
  0.8 times the slowest; once one kept up and a faster one fell behind, the next is their geometric
  middle, until the two lie within 5 % of each other or ``--probes`` have run. The maximum is the
  fastest probe that kept up below the slowest that fell behind (a slower probe that fell behind
  lowers it: it errs on the side the levels can carry). A probe that fell behind while other
  processes took more than a little CPU (``disturbed``) is run again at its rate, at most twice a
  run, and its second verdict counts. Every probe is in the JSON (rate, verdict
  and the figures it rests on), so a reader can check it. ``--max-rate`` gives the maximum instead
  (no probe, no former maximum), so that two versions can be compared at the same rates.
  Why not a closed loop of the mix counted over a steady window: the engine answers a create
  before that callback's work is done, so closed-loop creates outrun the completions and the
  backlog grows instead of settling (tried, on a busy machine: over an 8 s window twice as many
  creates as completions, and the backlog kept growing); and a backlog's work costs less CPU per callback
  (bigger group commits, fuller turns) than the same callbacks arriving at an even pace, so a
  batch's throughput overstates what an open stream can carry. Only the stream itself tells;
* for each share in ``--levels`` (default 50 % and 90 % of that maximum): the bare server under an
  open-loop POST stream at that rate (the reference), then ``--seconds`` of open-loop creates at that
  rate (create i is sent i / rate seconds in, whatever the answers before it did).
  ``--scheduled-share`` of them are scheduled ``--lead`` seconds ahead (``_desired_time`` truncated
  to the millisecond; the service's ``_request_execution_time_buffer`` is 0, so the session starts
  at the desired time, not two minutes before). No scheduled create is made in the last ``--lead``
  seconds, so every scheduled dial falls inside the loaded stretch; those slots stay empty, so the
  sessions started there (the immediate creates and the scheduled ones made ``--lead`` earlier) keep
  the pace of the rest of the stretch. (Until this change they were filled with immediate creates,
  which started 1 + ``--scheduled-share`` times as many sessions per second there: a burst of 1.5
  times the stretch's pace at its end, where ``kept_up`` and the p99 look.)

Figures per level (p50 / p99 / max, milliseconds):

* create -> first status: an immediate create's request sent (this process) -> the first
  notification of that callback received (the receiver), whichever event it is;
* desired -> dial: the flow executes ``<send type="platform" event="dial">`` in the ``<onentry>``
  that fires ``_cbe_on_dial_init``, whose ``t_entry`` is the lower figure. The platform gets the
  request after that macrostep's commit, which nothing outside the engine can see, so an upper
  figure per callback is given too: the earlier of the ``_cbe_on_dial_init`` notification's receipt
  (released after the same commit) and ``_cbe_on_dial_done``'s ``t_entry`` minus the ring time (the
  simulator answers a dial one ring after it got it). At every quantile the true figure lies
  between the two; desired -> flow start (``_cbe_on_service_create``) shows how much of it is the
  timer and the session start;
* the reference: the bare server's request latency at the same arrival rate;
* the create request's own latency; how late this client sent (open-loop slip: should be ~0);
  each callback's lifetime (create or desired time -> its last message) and whether the engine kept
  pace (``kept_up``: from ``--lead`` in to the last create, the steady part, it completed as many
  callbacks as started there, short by at most 3 % of them or 0.2 s of them; see ``steady_pace``);
  the median lifetimes of the middle and the last fifth; the drain after the last create; the
  longest silence at the receiver, a timeline and the slowest callbacks (to find stalls); the CPU
  of engine, receiver, client and everyone else.

Every callback must complete and send the warm-up's number of messages for its kind. The last line of
output is one JSON object with every figure; the exit code is 1 when a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    DISTURBED,
    HEADERS,
    QUEUE,
    RING,
    BenchFailed,
    bare_server,
    bench_main,
    kind_notes,
    managed_engine,
    print_engine_stop,
    run_result,
    simulator_toml,
)
from bench.httpload import LoadResult, drive, paced, quantile, wait_machine_quiet, wait_quiet  # noqa: E402
from bench.httpload import _timed as timed_call  # noqa: E402 - the drivers' one way to time and count a request
from bench.notifications import (  # noqa: E402
    CID,
    ENTRY,
    EVENT,
    EVENTS_LIST,
    FLOW,
    T,
    Usage,
    check_flow,
    dump,
    events_list,
    first_receipts,
    log_findings,
    receiver_running,
    timed_flow,
    wait_completed,
    wait_delivered,
)
from tests.support.engine_process import EngineProcess  # noqa: E402

BASE = "/genesys/1/service/callback"
NOW, SCHEDULED = "now", "scheduled"
#: No limit may refuse a create and no TTL end a callback; every dial answers; a scheduled
#: callback's session starts at its desired time.
SERVICE_OPTIONS = {
    "_service": FLOW, "_urs_virtual_queue": QUEUE, "_wait_for_agent": True, "_max_dial_attempts": 1,
    "_max_queued_callbacks_per_service": 10_000_000, "_max_request_by_time_bucket": 10_000_000,
    "_ttl": 10_000_000, "_request_execution_time_buffer": 0,
    "_enable_status_notification": "subscribe_notify", "_status_notification_type": "httpcb",
    "_callback_events_list": EVENTS_LIST,
}
FLOW_START, DIAL_INIT, DIAL_DONE = "_cbe_on_service_create", "_cbe_on_dial_init", "_cbe_on_dial_done"
WAS_SCHEDULED = "_cbe_on_callback_scheduled"
#: Slices of a phase's sending window in the timeline.
SLICES = 10
KEPT_UP = {True: "kept up", False: "FELL BEHIND", None: "pace unknown (too few callbacks)"}
#: ``steady_pace``: the engine kept up when it completed all but this share of the callbacks that
#: started in the steady part, or all but this many seconds of them; fewer starts say nothing.
KEPT_UP_SHORTFALL, KEPT_UP_SLACK, KEPT_UP_MIN_STARTS = 0.03, 0.2, 10
#: The search for the maximum: the first probe at FIRST_SHARE of the former (immediate-only)
#: maximum, or at FIRST_RATE callbacks/s without it; up by STEP_UP or down by STEP_DOWN until one
#: probe kept up and a faster one fell behind, then the geometric middle of the two until they lie
#: within BRACKET of each other.
FIRST_SHARE, FIRST_RATE = 0.85, 50.0
STEP_UP, STEP_DOWN, BRACKET = 1.25, 0.8, 0.05


@dataclass(frozen=True)
class Settings:
    """Counts, rates and speeds of one run."""

    quick: bool
    saturate: int  # immediate creates of the former maximum, for comparison and the search's start (0: none)
    probes: int  # open-loop probes the search for the maximum may run
    probe_seconds: float  # each probe's stretch of load
    max_rate: float | None  # given: no maximum-rate phase
    concurrency: int
    seconds: float
    levels: tuple[float, ...]
    scheduled_share: float
    lead: float
    reference_seconds: float
    shorten: float
    agents: int
    warmup: int
    stall: float
    quiet_load: float
    quiet_timeout: float
    keep: bool

    @property
    def ring(self) -> float:
        """Real seconds the simulator rings before it answers a dial."""
        return RING / self.shorten


def level_name(share: float) -> str:
    """``load50`` for 0.5: the phase, its service and its receiver path."""
    return f"load{round(100 * share)}"


def probe_name(number: int) -> str:
    """``probe1`` for the first probe of the search for the maximum: its phase, service and path."""
    return f"probe{number}"


# -- configuration ----------------------------------------------------------------------------

def write_setup(root: Path, settings: Settings, receiver: str) -> tuple[Path, Path]:
    """Config folder (clock at scale 1 with short calls, one service per phase, the list) and flows."""
    config, flows = root / "config", root / "flows"
    for folder in (config / "services", config / "business-hours", config / "transaction-lists", flows):
        folder.mkdir(parents=True, exist_ok=True)
    (config / "simulator.toml").write_text(simulator_toml(1.0, settings.agents, settings.shorten))
    (config / "transaction-lists" / f"{EVENTS_LIST}.cfg").write_text(events_list())
    # The outbound URL policy refuses loopback targets unless their network is allowed.
    (config / "notifications.json").write_text(json.dumps({"allowed_networks": ["127.0.0.1/32"]}))
    probes = (probe_name(number) for number in range(1, settings.probes + MAX_RERUNS + 1))
    for phase in ("warm", "max", *probes, *map(level_name, settings.levels)):
        options = {**SERVICE_OPTIONS, "_status_notification_target": f"{receiver}/hook/{phase}"}
        (config / "services" / f"bench_{phase}.json").write_text(json.dumps(options))
    (flows / f"{FLOW}.scxml").write_text(timed_flow((REPO / "scxml" / "callback.scxml").read_text()))
    return config, flows


# -- creating callbacks -----------------------------------------------------------------------

def iso_ms(epoch: float) -> str:
    """``epoch`` truncated to the millisecond as the engine writes times (so it stores it unchanged)."""
    moment = datetime.fromtimestamp(math.floor(epoch * 1000) / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO time ending in ``Z``."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def open_stream(seconds: float, rate: float, share: float, lead: float) -> tuple[list[float], list[str]]:
    """The creates of an open-loop stream: when each is due (seconds in) and its kind.

    Slot i is due i / rate in; ``share`` of the slots, evenly spread, are scheduled ``lead`` ahead.
    A scheduled slot in the last ``lead`` seconds stays empty: its dial would come after the load
    has stopped, and an immediate create in its place would start a session there on top of the
    scheduled ones made ``lead`` earlier ((1 + share) times the sessions of the rest of the stream,
    a burst at its end). Empty, the sessions keep the pace of the rest; only scheduled creates,
    the cheap part of a scheduled callback, are missing there.
    """
    count = max(2, round(rate * seconds))
    last_scheduled = count / rate - lead
    due, kinds = [], []
    for slot in range(count):
        kind = SCHEDULED if math.floor((slot + 1) * share) > math.floor(slot * share) else NOW
        if kind == NOW or slot / rate <= last_scheduled:
            due.append(slot / rate)
            kinds.append(kind)
    return due, kinds


async def paced_at(due: list[float], call: Callable[[int], Awaitable[int]]) -> LoadResult:
    """Open loop: request i starts ``due[i]`` seconds in, whatever the answers before it did
    (``httpload.paced`` with a schedule that may skip slots); its latency counts from then."""
    result = LoadResult(requests=len(due), seconds=0.0)
    began = time.perf_counter()

    async def one(index: int) -> None:
        await asyncio.sleep(max(0.0, began + due[index] - time.perf_counter()))
        await timed_call(result, index, call)

    await asyncio.gather(*(one(index) for index in range(len(due))))
    result.seconds = time.perf_counter() - began
    return result


@dataclass
class Phase:
    """One batch of creates, when each was sent, and what the receiver got for them."""

    name: str
    kinds: list[str]
    ids: list[str]  # "" where the create failed
    sent: list[float]  # wall clock when each create was sent
    desired: list[float | None]  # the scheduled ones' desired time
    creates: LoadResult
    rate: float | None  # offered rate of an open-loop phase (of its slots)
    lead: float  # seconds a scheduled create's desired time lies ahead
    due: list[float] | None  # when each create of an open-loop phase was due, seconds in
    wait: dict[str, Any]
    cpu: dict[str, float]
    rows: list[list[Any]]


async def create_callbacks(client: aiohttp.ClientSession, engine_url: str, name: str, kinds: list[str],
                           settings: Settings, lead: float, due: list[float] | None) -> tuple[
                               LoadResult, list[str], list[float], list[float | None]]:
    """Create one callback per kind, closed-loop or open-loop when ``due``; ids, send times, desired times."""
    count = len(kinds)
    ids, sent, desired = [""] * count, [0.0] * count, [None] * count
    failures: list[str] = []
    url = f"{engine_url}{BASE}/bench_{name}"

    async def one(index: int) -> int:
        body: dict[str, Any] = {"_customer_number": f"+1555{9_000_000 + index:07d}"}
        sent[index] = time.time()
        if kinds[index] == SCHEDULED:
            body["_desired_time"] = iso_ms(sent[index] + lead)
            desired[index] = parse_iso(body["_desired_time"])
        async with client.post(url, data=json.dumps(body).encode(), headers=HEADERS) as response:
            raw = await response.read()
            if response.status == 200:
                ids[index] = json.loads(raw)["_id"]
            else:
                failures.append(f"{response.status}: {raw[:200].decode(errors='replace')}")
            return response.status

    result = await (paced_at(due, one) if due is not None else drive(count, settings.concurrency, one))
    result.failures.extend(failures)
    return result, ids, sent, desired


async def run_phase(client: aiohttp.ClientSession, engine: EngineProcess, receiver: tuple[str, int], name: str,
                    kinds: list[str], settings: Settings, expected: dict[str, int] | None,
                    lead: float, rate: float | None = None, due: list[float] | None = None) -> Phase:
    """Create the callbacks on an idle engine, then wait until their messages are in and none is open.

    ``expected`` is the number of messages per kind; without it (the warm-up) the wait ends once
    every callback completed and the receiver's count held still for a second. ``due`` (seconds
    in, one per kind) makes it an open loop at ``rate``.
    """
    assert engine.proc is not None
    await wait_quiet(engine.proc.pid, timeout=60.0)
    cpu = Usage({"engine": engine.proc.pid, "receiver": receiver[1]})
    creates, ids, sent, desired = await create_callbacks(client, engine.url, name, kinds, settings, lead, due)
    path = f"/hook/{name}"
    if expected is None:
        await wait_completed(client, engine.url, name, timeout=60.0)
        wait = await wait_delivered(client, receiver[0], path, None, settings.stall)
    else:
        total = sum(expected[kind] for kind, cid in zip(kinds, ids, strict=True) if cid)
        wait = await wait_delivered(client, receiver[0], path, total, settings.stall)
    figures = cpu.figures()
    rows, _ = await dump(client, receiver[0], path)
    return Phase(name, kinds, ids, sent, desired, creates, rate, lead, due, wait, figures, rows)


# -- figures ----------------------------------------------------------------------------------

def spread(values: list[float]) -> dict[str, Any]:
    """Samples, p50, p90, p99, max and min of seconds, in milliseconds."""
    ordered = sorted(values)

    def at(q: float) -> float | None:
        return round(1000 * quantile(ordered, q), 2) if ordered else None

    return {"samples": len(ordered), "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99),
            "max_ms": at(1.0), "min_ms": round(1000 * ordered[0], 2) if ordered else None}


def timed(points: list[tuple[float, float]], window: float) -> dict[str, Any]:
    """Latencies (offset in the sending window, seconds) as quantiles, a timeline and the slowest.

    The timeline (p50 and p99 per tenth of the window) shows a backlog growing or a stall; the
    slowest five say when they were sent.
    """
    slices: list[list[float]] = [[] for _ in range(SLICES)]
    for offset, value in points:
        slices[min(SLICES - 1, max(0, int(SLICES * offset / window))) if window > 0 else 0].append(value)
    timeline = [[round(i * window / SLICES, 2), spread(s)["p50_ms"], spread(s)["p99_ms"], len(s)]
                for i, s in enumerate(slices)]
    slowest = sorted(points, key=lambda p: p[1], reverse=True)[:5]
    return {**spread([value for _, value in points]),
            "timeline_s_p50_p99_n": timeline,
            "slowest_at_s_ms": [[round(offset, 2), round(1000 * value, 2)] for offset, value in slowest]}


def learn_counts(phase: Phase, problems: list[str]) -> dict[str, int]:
    """Messages one callback of each kind sends in this set-up (all of a kind take the same path)."""
    if phase.creates.ok != phase.creates.requests:
        raise BenchFailed(f"warm-up: {phase.creates.requests - phase.creates.ok} creates failed "
                          f"{dict(phase.creates.statuses)}: {phase.creates.failures[:2]}")
    per_cid = Counter(row[CID] for row in first_receipts(phase.rows))
    learned: dict[str, int] = {}
    for kind in (NOW, SCHEDULED):
        counts = Counter(per_cid[cid] for cid, k in zip(phase.ids, phase.kinds, strict=True) if cid and k == kind)
        if not counts or counts.most_common(1)[0][0] == 0:
            raise BenchFailed(f"warm-up: no notification of a {kind} callback reached the receiver")
        if len(counts) > 1:
            problems.append(f"warm-up: {kind} callbacks sent different numbers of messages {dict(counts)}")
        learned[kind] = counts.most_common(1)[0][0]
    return learned


def receipts_by_callback(rows: list[list[Any]]) -> dict[str, dict[str, list[Any]]]:
    """Each callback's first receipt of each event (rows in arrival order, duplicates dropped)."""
    out: dict[str, dict[str, list[Any]]] = {}
    for row in first_receipts(rows):
        out.setdefault(row[CID], {}).setdefault(row[EVENT], row)
    return out


def entry_time(row: list[Any] | None) -> float | None:
    """The engine's wall clock at the state's entry (``t_entry``), if the row has one."""
    return row[ENTRY] if row is not None and isinstance(row[ENTRY], int | float) else None


def silence(times: list[float], began: float) -> dict[str, float | None]:
    """The longest stretch without a receipt between the first and the last one: a stall shows here."""
    if len(times) < 2:
        return {"longest_silence_ms": None, "longest_silence_at_s": None}
    gap, at = max((later - earlier, earlier) for earlier, later in itertools.pairwise(times))
    return {"longest_silence_ms": round(1000 * gap, 2), "longest_silence_at_s": round(at - began, 2)}


def delivery_check(phase: Phase, expected: dict[str, int], problems: list[str]) -> dict[str, int]:
    """Each callback got its kind's number of messages; counts missing, extra and duplicate receipts.

    A scheduled create that reached the engine after its desired time ran at once, and sends what
    an immediate one does (``scheduled_figures`` reports it).
    """
    per_cid = Counter(row[CID] for row in first_receipts(phase.rows))
    ran = {(row[CID], row[EVENT]) for row in phase.rows}
    ours = {cid: kind if (cid, WAS_SCHEDULED) in ran else NOW
            for cid, kind in zip(phase.ids, phase.kinds, strict=True) if cid}
    missing = sum(max(0, expected[kind] - per_cid[cid]) for cid, kind in ours.items())
    extra = sum(max(0, per_cid[cid] - expected[kind]) for cid, kind in ours.items())
    strangers = sum(n for cid, n in per_cid.items() if cid not in ours)
    duplicates = len(phase.rows) - sum(per_cid.values())
    failed = phase.creates.requests - phase.creates.ok
    figures = {"expected": sum(expected[kind] for kind in ours.values()), "missing": missing, "extra": extra,
               "strangers": strangers, "duplicates": duplicates, "creates_failed": failed}
    if missing or extra or strangers or failed:
        problems.append(f"{phase.name}: {figures} (creates {dict(phase.creates.statuses)}: "
                        f"{phase.creates.failures[:3]})")
    return figures


def scheduled_figures(phase: Phase, seen: dict[str, dict[str, list[Any]]], began: float, window: float,
                      ring: float, problems: list[str], early_is_problem: bool = True) -> dict[str, Any]:
    """desired -> dial sent by the flow (lower), -> dial surely at the platform (upper), -> flow start.

    ``early_is_problem``: whether a scheduled create answered after its desired time fails the run
    (a level's lead is too short), or is only counted (a probe of the search may overload the engine).
    """
    sent_at, upper, start = [], [], []
    early = untimed = 0
    for cid, kind, desired in zip(phase.ids, phase.kinds, phase.desired, strict=True):
        if not cid or kind != SCHEDULED or desired is None:
            continue
        events = seen.get(cid, {})
        if WAS_SCHEDULED not in events:
            early += 1  # the create came later than the lead: it started at once
            continue
        init, done = events.get(DIAL_INIT), entry_time(events.get(DIAL_DONE))
        dial, flow = entry_time(init), entry_time(events.get(FLOW_START))
        if init is None or dial is None or flow is None:
            untimed += 1
            continue
        offset = desired - began
        sent_at.append((offset, dial - desired))
        upper.append((offset, min(init[T], done - ring if done is not None else math.inf) - desired))
        start.append((offset, flow - desired))
    if early and early_is_problem:
        problems.append(f"{phase.name}: {early} scheduled callbacks started at once (their create took "
                        f"longer than the lead); raise --lead")
    if untimed:
        problems.append(f"{phase.name}: {untimed} scheduled callbacks lack a timed flow start or dial")
    return {"desired_to_dial_sent": timed(sent_at, window), "desired_to_dial_upper": timed(upper, window),
            "desired_to_flow_start": spread([value for _, value in start]), "started_at_once": early}


def steady_pace(lifetimes: list[tuple[float, float]], steady_from: float, steady_to: float) -> dict[str, Any]:
    """Callbacks started and completed in the stream's steady part, and whether the engine kept up.

    ``lifetimes`` are (start, start -> last message) in seconds from the first create; the steady
    part runs from ``--lead`` in (the first scheduled sessions start: the full mix is in) to the last
    create. An engine that keeps up completes there as many callbacks as start there (the ones
    completed early in it started a lifetime before it, as many as start in its last lifetime);
    one that does not completes at its own pace and the difference is the backlog it grew. Kept up:
    the shortfall is at most KEPT_UP_SHORTFALL of the starts, or KEPT_UP_SLACK seconds of them
    (a short stretch: a commit's batch at either end is not a backlog). ``None``: too few starts.
    """
    seconds = steady_to - steady_from
    started = sum(1 for at, _ in lifetimes if steady_from <= at < steady_to)
    completed = sum(1 for at, life in lifetimes if steady_from <= at + life < steady_to)
    verdict: bool | None = None
    if started >= KEPT_UP_MIN_STARTS and seconds > 0:
        allowed = max(KEPT_UP_SHORTFALL * started, KEPT_UP_SLACK * started / seconds)
        verdict = started - completed <= allowed
    return {"kept_up": verdict, "steady_seconds": round(seconds, 3), "steady_started": started,
            "steady_completed": completed,
            "steady_completed_per_second": round(completed / seconds, 1) if seconds > 0 else None,
            "steady_started_per_second": round(started / seconds, 1) if seconds > 0 else None}


def trend_medians(lifetimes: list[tuple[float, float]], window: float) -> tuple[float | None, float | None]:
    """Median lifetime (seconds) of the callbacks started in the middle fifth and in the last fifth."""
    middle = sorted(value for offset, value in lifetimes if 0.4 * window <= offset < 0.6 * window)
    last = sorted(value for offset, value in lifetimes if offset >= 0.8 * window)
    return (quantile(middle, 0.5) if middle else None), (quantile(last, 0.5) if last else None)


def phase_figures(phase: Phase, expected: dict[str, int], ring: float, problems: list[str],
                  early_is_problem: bool = True) -> dict[str, Any]:
    """Latencies, lifetimes, drain, silences, client slip and CPU of one phase."""
    sent = [s for s, cid in zip(phase.sent, phase.ids, strict=True) if cid]
    if not sent:
        raise BenchFailed(f"{phase.name}: no create succeeded: {phase.creates.failures[:3]}")
    began, last_sent = min(sent), max(sent)
    window = max(last_sent - began, 1e-9)
    seen = receipts_by_callback(phase.rows)
    receipts = sorted(row[T] for row in first_receipts(phase.rows))
    first_status, lifetimes = [], []
    for cid, kind, at, desired in zip(phase.ids, phase.kinds, phase.sent, phase.desired, strict=True):
        if not cid or cid not in seen:
            continue
        times = [row[T] for row in seen[cid].values()]
        if kind == NOW:
            first_status.append((at - began, min(times) - at))
        start = at if desired is None else desired
        lifetimes.append((start - began, max(times) - start))
    last = receipts[-1] if receipts else began
    callbacks = len(sent)
    figures: dict[str, Any] = {
        "callbacks": callbacks, "scheduled": sum(1 for k, cid in zip(phase.kinds, phase.ids, strict=True)
                                                 if cid and k == SCHEDULED),
        "sending_seconds": round(window, 3), "offered_per_second": None if phase.rate is None else round(phase.rate, 1),
        "sent_per_second": round(callbacks / window, 1) if callbacks > 1 else None,
        "achieved_per_second": round(callbacks / (last - began), 1) if last > began else None,
        "drain_seconds": round(last - last_sent, 3),
        "create_to_first_status": timed(first_status, window),
        "start_to_last_message": timed(lifetimes, window),
        "create": phase.creates.summary(), "wait": phase.wait, "cpu": phase.cpu,
        "engine_cpu_ms_per_callback": round(1000 * phase.cpu["engine_cpu_seconds"] / callbacks, 3),
        "disturbed": max(phase.cpu["foreign_cpu_share"], phase.cpu["steal_share"]) > DISTURBED,
        **silence(receipts, began), "delivery": delivery_check(phase, expected, problems),
    }
    if phase.rate and phase.due is not None:
        # Send i was due due[i] after the stretch began; the earliest start all sends agree with is that moment.
        starts = [at - due for at, due in zip(phase.sent, phase.due, strict=True)]
        figures["client_slip"] = spread([at - min(starts) for at in starts])
        figures.update(steady_pace(lifetimes, min(phase.lead, window), window))
        figures["lifetime_p50_ms_middle_last"] = [None if value is None else round(1000 * value, 2)
                                                  for value in trend_medians(lifetimes, window)]
    if any(kind == SCHEDULED for kind in phase.kinds):
        figures.update(scheduled_figures(phase, seen, began, window, ring, problems, early_is_problem))
    return figures


# -- the reference ----------------------------------------------------------------------------

async def reference_round(client: aiohttp.ClientSession, ref: tuple[str, int], rate: float, seconds: float,
                          problems: list[str]) -> dict[str, Any]:
    """The bare server under the same open-loop arrival rate, with bodies shaped like the creates."""
    base, pid = ref
    count = max(2, round(rate * seconds))

    async def one(index: int) -> int:
        body = json.dumps({"_customer_number": f"+1555{9_000_000 + index:07d}"}).encode()
        async with client.post(f"{base}/echo", data=body, headers=HEADERS) as response:
            await response.read()
            return response.status

    cpu = Usage({"bare": pid})
    result = await paced(count, rate, one)
    figures = cpu.figures()
    if result.ok != result.requests:
        problems.append(f"reference at {rate:.1f}/s: {result.requests - result.ok} of {result.requests} failed "
                        f"{dict(result.statuses)}: {result.failures[:3]}")
    return {"rate": round(rate, 1), **result.summary(), "latency": spread(result.latencies), "cpu": figures,
            "disturbed": max(figures["foreign_cpu_share"], figures["steal_share"]) > DISTURBED}


# -- the run ----------------------------------------------------------------------------------

async def measure(client: aiohttp.ClientSession, engine: EngineProcess, receiver: tuple[str, int],
                  ref: tuple[str, int], settings: Settings, problems: list[str]) -> dict[str, Any]:
    """Warm-up, the maximum rate, then each level: reference, then the engine at that rate."""
    await check_flow(client, engine, (FLOW,))
    await drive(200, 8, lambda i: reference_round_warm(client, ref[0], i))
    warm = await run_phase(client, engine, receiver, "warm", [NOW, SCHEDULED] * settings.warmup, settings,
                           None, lead=1.0)
    expected = learn_counts(warm, problems)
    if settings.max_rate:
        sat: dict[str, Any] = {"given": settings.max_rate}
        maximum: float | None = settings.max_rate
    else:
        sat = await measure_maximum(client, engine, receiver, settings, expected, problems)
        maximum = sat["callbacks_per_second"]
    if not maximum:
        raise BenchFailed(f"the maximum rate could not be measured: no probe kept up "
                          f"{[(probe['rate'], probe['kept_up']) for probe in sat.get('probes', [])]}")
    levels: dict[str, Any] = {}
    for share in settings.levels:
        rate = share * maximum
        reference = await reference_round(client, ref, rate, settings.reference_seconds, problems)
        figures = await open_loop(client, engine, receiver, level_name(share), rate, settings.seconds, settings,
                                  expected, problems)
        levels[level_name(share)] = {"share": share, "reference": reference, **figures}
    return {"messages_per_callback": expected, "warmup": phase_figures(warm, expected, settings.ring, problems),
            "maximum": sat, "max_rate_used": maximum, "levels": levels}


async def open_loop(client: aiohttp.ClientSession, engine: EngineProcess, receiver: tuple[str, int], name: str,
                    rate: float, seconds: float, settings: Settings, expected: dict[str, int], problems: list[str],
                    early_is_problem: bool = True) -> dict[str, Any]:
    """The levels' load: ``seconds`` of open-loop creates at ``rate``, ``--scheduled-share`` of them
    ``--lead`` ahead; its figures once every callback completed."""
    due, kinds = open_stream(seconds, rate, settings.scheduled_share, settings.lead)
    phase = await run_phase(client, engine, receiver, name, kinds, settings, expected, lead=settings.lead, rate=rate,
                            due=due)
    figures = phase_figures(phase, expected, settings.ring, problems, early_is_problem)
    await wait_completed(client, engine.url, name, timeout=30.0)
    return figures


#: Probes run again because they fell behind while another process took the CPU (at most).
MAX_RERUNS = 2


def bracket(probes: list[tuple[float, bool]]) -> tuple[float | None, float | None]:
    """(the highest rate that kept up below every rate that fell behind, the lowest that fell behind).

    A probe that fell behind under a rate that kept up (a hiccup, or a noisy neighbour) lowers the
    maximum instead of being outvoted: the figure errs on the side the levels can carry.
    """
    fell = min((rate for rate, kept in probes if not kept), default=None)
    kept = [rate for rate, ok in probes if ok and (fell is None or rate < fell)]
    return (max(kept) if kept else None), fell


def next_probe(probes: list[tuple[float, bool]], first: float) -> float | None:
    """The rate of the next probe given those run (rate, kept up), or ``None``: the bracket is narrow."""
    if not probes:
        return first
    low, high = bracket(probes)
    if low is None:
        assert high is not None
        return round(high * STEP_DOWN, 1)
    if high is None:
        return round(low * STEP_UP, 1)
    if high <= low * (1 + BRACKET):
        return None
    return round(math.sqrt(low * high), 1)


def probe_summary(rate: float, figures: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to check one probe's verdict."""
    lifetime, first = figures["start_to_last_message"], figures["create_to_first_status"]
    return {"rate": rate, "kept_up": figures["kept_up"], "steady_started_per_second":
            figures["steady_started_per_second"], "steady_completed_per_second": figures["steady_completed_per_second"],
            "callbacks": figures["callbacks"],
            "scheduled": figures["scheduled"], "sent_per_second": figures["sent_per_second"],
            "achieved_per_second": figures["achieved_per_second"],
            "drain_seconds": figures["drain_seconds"],
            "lifetime_p50_ms_middle_last": figures["lifetime_p50_ms_middle_last"],
            "start_to_last_message_ms_p50_p99": [lifetime["p50_ms"], lifetime["p99_ms"]],
            "create_to_first_status_ms_p50_p99": [first["p50_ms"], first["p99_ms"]],
            "started_at_once": figures.get("started_at_once", 0),
            "engine_cpu_share": figures["cpu"]["engine_cpu_share"],
            "engine_cpu_ms_per_callback": figures["engine_cpu_ms_per_callback"],
            "foreign_cpu_share": figures["cpu"]["foreign_cpu_share"], "disturbed": figures["disturbed"]}


async def measure_maximum(client: aiohttp.ClientSession, engine: EngineProcess, receiver: tuple[str, int],
                          settings: Settings, expected: dict[str, int], problems: list[str]) -> dict[str, Any]:
    """The former maximum (immediate creates closed-loop: callbacks / first create -> last message),
    kept for comparison and as the first guess; then the maximum: the highest rate of the levels' own
    open-loop load that kept up, found by probes (``next_probe``)."""
    out: dict[str, Any] = {}
    first = FIRST_RATE
    if settings.saturate:
        former = await run_phase(client, engine, receiver, "max", [NOW] * settings.saturate, settings, expected,
                                 lead=settings.lead)
        figures = phase_figures(former, expected, settings.ring, problems)
        out["immediate_only"] = {"callbacks_per_second": figures["achieved_per_second"], **figures}
        if figures["achieved_per_second"]:
            first = round(FIRST_SHARE * figures["achieved_per_second"], 1)
    verdicts: list[tuple[float, bool]] = []
    probes: list[dict[str, Any]] = []
    reruns = 0
    number = 0
    while len(verdicts) < settings.probes:
        rate = next_probe(verdicts, first)
        if rate is None:
            break
        number += 1
        figures = await open_loop(client, engine, receiver, probe_name(number), rate, settings.probe_seconds,
                                  settings, expected, problems, early_is_problem=False)
        kept = figures["kept_up"] is True
        probes.append(probe_summary(rate, figures))
        if not kept and figures["disturbed"] and reruns < MAX_RERUNS:
            # Fell behind while another process took the CPU: run that rate once more and keep the
            # second verdict (both probes are reported), so a neighbour's burst does not set the maximum.
            reruns += 1
            probes[-1]["rerun"] = "fell behind while disturbed: run again"
            continue
        verdicts.append((rate, kept))
    low, high = bracket(verdicts)
    at_max = next((probe for probe in probes if probe["rate"] == low), {})
    return {"callbacks_per_second": low, "fell_behind_at": high, "first_probe": first,
            "narrowed": next_probe(verdicts, first) is None,
            "engine_cpu_ms_per_callback": at_max.get("engine_cpu_ms_per_callback"),
            "engine_cpu_share": at_max.get("engine_cpu_share"),
            "disturbed": any(probe["disturbed"] for probe in probes), "probes": probes, **out}


async def reference_round_warm(client: aiohttp.ClientSession, base: str, index: int) -> int:
    """One untimed request to the bare server: its connections and code paths warm before it is timed."""
    async with client.post(f"{base}/echo", data=b'{"warm": 1}', headers=HEADERS) as response:
        await response.read()
        return response.status


def headline(figures: dict[str, Any], quiet: dict[str, Any]) -> dict[str, Any]:
    """The figures a reader wants first, flat: ``..._at_50`` is at 50 % of the maximum rate."""
    sat = figures.get("maximum", {})
    former = sat.get("immediate_only", {})
    out: dict[str, Any] = {"max_callbacks_per_second": figures.get("max_rate_used"),
                           "max_rate_measured": "given" not in sat,
                           "max_fell_behind_at": sat.get("fell_behind_at"), "max_probes": len(sat.get("probes", [])),
                           "max_engine_cpu_ms_per_callback": sat.get("engine_cpu_ms_per_callback"),
                           "max_engine_cpu_share": sat.get("engine_cpu_share"),
                           "max_immediate_only_callbacks_per_second": former.get("callbacks_per_second"),
                           "max_immediate_only_engine_cpu_ms_per_callback": former.get("engine_cpu_ms_per_callback")}
    disturbed = ["maximum"] if sat.get("disturbed") else []
    disturbed += ["immediate-only maximum"] if former.get("disturbed") else []
    for name, level in figures.get("levels", {}).items():
        at = name.removeprefix("load")
        first, ref = level["create_to_first_status"], level["reference"]["latency"]
        low, high = level.get("desired_to_dial_sent", {}), level.get("desired_to_dial_upper", {})
        out.update({
            f"rate_at_{at}": level["offered_per_second"], f"kept_up_at_{at}": level.get("kept_up"),
            f"create_to_first_status_ms_p50_at_{at}": first["p50_ms"],
            f"create_to_first_status_ms_p99_at_{at}": first["p99_ms"],
            f"desired_to_dial_ms_p50_at_{at}": low.get("p50_ms"), f"desired_to_dial_ms_p99_at_{at}": low.get("p99_ms"),
            f"desired_to_dial_upper_ms_p50_at_{at}": high.get("p50_ms"),
            f"desired_to_dial_upper_ms_p99_at_{at}": high.get("p99_ms"),
            f"reference_ms_p50_at_{at}": ref["p50_ms"], f"reference_ms_p99_at_{at}": ref["p99_ms"],
        })
        disturbed += [name] if level.get("disturbed") else []
        disturbed += [f"reference {name}"] if level["reference"]["disturbed"] else []
    out["machine_busy"] = not quiet.get("quiet_at_start", False) or bool(disturbed)
    out["disturbed_parts"] = disturbed
    return out


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Quiet machine, then receiver, bare server and engine side by side; a failed check ends the phases."""
    problems: list[str] = []
    quiet = await wait_machine_quiet(settings.quiet_load, settings.quiet_timeout)
    began = time.perf_counter()
    record: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    # Open loop: a request never waits for a free connection, so the pool is far larger than the load needs.
    connector = aiohttp.TCPConnector(limit=1024)
    try:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)))
            receiver = await stack.enter_async_context(receiver_running(client, workdir))
            ref = await stack.enter_async_context(bare_server(client, workdir))
            config, flows = write_setup(workdir, settings, receiver[0])
            engine = EngineProcess(workdir / "data", flows, config_dir=str(config), persistence="true")
            await stack.enter_async_context(managed_engine(engine, record, log_findings))
            figures = await measure(client, engine, receiver, ref, settings, problems)
    except RuntimeError as exc:  # BenchFailed, or a process that did not come up
        problems.append(f"{type(exc).__name__}: {exc}")
    return run_result(figures, headline(figures, quiet), record, quiet, asdict(settings), began, problems)


# -- report and CLI ---------------------------------------------------------------------------

def quantile_text(part: dict[str, Any]) -> str:
    """``p50 / p99 / max (n)`` of a spread."""
    return (f"p50 {part.get('p50_ms')} ms, p99 {part.get('p99_ms')} ms, max {part.get('max_ms')} ms "
            f"({part.get('samples')})")


def print_report(result: dict[str, Any]) -> None:
    """A readable summary before the JSON line."""
    s, h = result["settings"], result["headline"]
    print(f"latency benchmark: engine clock at scale 1, calls shortened {s['shorten']:g}x (ring "
          f"{1000 * RING / s['shorten']:g} ms), persistence on, Python {result['python']}, {result['cpus']} CPUs"
          f"{'  [quick]' if s['quick'] else ''}")
    if "maximum" not in result:
        return
    sat = result["maximum"]
    if "given" in sat:
        print(f"  maximum: {sat['given']} callbacks/s, given (--max-rate), not measured")
    else:
        former = sat.get("immediate_only")
        if former:
            print(f"  former maximum (immediate creates closed-loop, {s['concurrency']} in flight, create -> "
                  f"last notification; comparison only): {former['callbacks_per_second']} callbacks/s "
                  f"({former['callbacks']} callbacks; engine {former['engine_cpu_ms_per_callback']} ms CPU each)")
        unfinished = "" if sat["narrowed"] else " (the probes ran out before the bracket was narrow)"
        print(f"  maximum: {h['max_callbacks_per_second']} callbacks/s, the fastest probe of the levels' load "
              f"({round(100 * s['scheduled_share'])} % scheduled {s['lead']:g} s ahead, {s['probe_seconds']:g} s "
              f"open loop) that kept up; fell behind at {sat['fell_behind_at']}/s{unfinished}; engine "
              f"{sat['engine_cpu_share']} of a core, {sat['engine_cpu_ms_per_callback']} ms CPU per callback; "
              f"messages per callback {result['messages_per_callback']}")
        for probe in sat["probes"]:
            print(f"    probe {probe['rate']}/s: {KEPT_UP[probe['kept_up']]} (steady part: started "
                  f"{probe['steady_started_per_second']}/s, completed {probe['steady_completed_per_second']}/s; "
                  f"drain {probe['drain_seconds']} s, lifetime p50 "
                  f"middle/last fifth {'/'.join(map(str, probe['lifetime_p50_ms_middle_last']))} ms, engine "
                  f"{probe['engine_cpu_share']} core, {probe['engine_cpu_ms_per_callback']} ms/callback, others "
                  f"{probe['foreign_cpu_share']})")
    for level in result["levels"].values():
        ref, cpu = level["reference"], level["cpu"]
        print(f"  {round(100 * level['share'])} % = {level['offered_per_second']} callbacks/s offered, open loop: "
              f"{level['callbacks']} callbacks ({level['scheduled']} scheduled) in {level['sending_seconds']} s, "
              f"{level['sent_per_second']}/s (no scheduled create in the last {s['lead']:g} s); "
              f"{KEPT_UP[level['kept_up']]} (steady part: started {level['steady_started_per_second']}/s, "
              f"completed {level['steady_completed_per_second']}/s; drain {level['drain_seconds']} s)")
        print(f"    start -> last message      : {quantile_text(level['start_to_last_message'])}")
        print(f"    create -> first status     : {quantile_text(level['create_to_first_status'])}")
        print(f"    desired -> dial sent       : {quantile_text(level.get('desired_to_dial_sent', {}))}")
        print(f"    desired -> dial, upper     : {quantile_text(level.get('desired_to_dial_upper', {}))}")
        print(f"    desired -> flow start      : {quantile_text(level.get('desired_to_flow_start', {}))}")
        print(f"    create answered            : p50 {level['create']['latency_ms_p50']} ms, "
              f"p99 {level['create']['latency_ms_p99']} ms, max {level['create']['latency_ms_max']} ms")
        print(f"    bare server, same rate     : {quantile_text(ref['latency'])}")
        print(f"    client slip p99 {level['client_slip']['p99_ms']} ms; longest silence at the receiver "
              f"{level['longest_silence_ms']} ms at {level['longest_silence_at_s']} s; engine "
              f"{cpu['engine_cpu_share']} of a core ({level['engine_cpu_ms_per_callback']} ms/callback), receiver "
              f"{cpu['receiver_cpu_share']}, client {cpu['client_cpu_share']}, others {cpu['foreign_cpu_share']}, "
              f"steal {cpu['steal_share']}")
        print("    p50/p99 create -> first status by tenth of the stretch: "
              + ", ".join(f"{p50}/{p99}" for _, p50, p99, _ in level["create_to_first_status"]["timeline_s_p50_p99_n"]))
    print_engine_stop(result, "the latencies are high")


def settings_from(argv: list[str] | None) -> Settings:
    """Parse the CLI; ``--quick`` shrinks every count and time not given explicitly."""
    parser = argparse.ArgumentParser(description="latency under load: create -> first status, desired -> dial")
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, seconds")
    parser.add_argument("--saturate", type=int,
                        help="immediate callbacks of the former closed-loop maximum, reported for comparison and "
                             "the search's first guess (default 3000, quick 150; 0: skip, first probe at "
                             f"{FIRST_RATE:g}/s)")
    parser.add_argument("--probes", type=int, help="open-loop probes the search for the maximum may run "
                                                   "(default 7, quick 3)")
    parser.add_argument("--probe-seconds", type=float, help="seconds of load per probe (default 8, quick 3)")
    parser.add_argument("--max-rate", type=float,
                        help="take this as the maximum callbacks/s instead of measuring it (A/B runs at equal rates)")
    parser.add_argument("--concurrency", type=int, default=32,
                        help="creates in flight in the former (closed-loop) maximum (default 32)")
    parser.add_argument("--seconds", type=float, help="seconds of open-loop load per level (default 25, quick 4)")
    parser.add_argument("--levels", default="0.5,0.9", help="shares of the maximum rate (default 0.5,0.9)")
    parser.add_argument("--scheduled-share", type=float, default=0.5,
                        help="share of the open-loop creates that are scheduled (default 0.5)")
    parser.add_argument("--lead", type=float, help="seconds a scheduled create's desired time lies ahead "
                                                   "(default 2, quick 1.5)")
    parser.add_argument("--reference-seconds", type=float,
                        help="seconds of the bare-server stream per level (default 10, quick 2)")
    parser.add_argument("--shorten", type=float, default=2000.0,
                        help="simulated call phases divided by this, the engine clock at scale 1 (default 2000)")
    parser.add_argument("--agents", type=int, default=300, help=f"agents in {QUEUE} (default 300)")
    parser.add_argument("--warmup", type=int, help="warm-up callbacks of each kind (default 10, quick 4)")
    parser.add_argument("--stall", type=float, help="seconds without a new message before giving up "
                                                    "(default 20, quick 10)")
    parser.add_argument("--quiet-load", type=float, default=1.0, help="1-minute load average counted as quiet")
    parser.add_argument("--quiet-timeout", type=float,
                        help="seconds to wait for a quiet machine (default 60, quick 0: just note it)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (engine log, database)")
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: float | None, full: float, small: float) -> float:
        return value if value is not None else (small if quick else full)

    levels = tuple(sorted({float(text) for text in args.levels.split(",") if text.strip()}))
    if not levels or not all(0 < share <= 1.5 for share in levels):
        parser.error("--levels: shares between 0 and 1.5, e.g. 0.5,0.9")
    seconds, lead = max(0.5, pick(args.seconds, 25.0, 4.0)), max(0.1, pick(args.lead, 2.0, 1.5))
    probe_seconds = max(0.5, pick(args.probe_seconds, 8.0, 3.0))
    if lead >= min(seconds, probe_seconds):
        parser.error("--lead must be shorter than --seconds and --probe-seconds: scheduled dials must fall "
                     "inside the load")
    return Settings(
        quick=quick, saturate=max(0, int(pick(args.saturate, 3000, 150))),
        probes=max(1, int(pick(args.probes, 7, 3))), probe_seconds=probe_seconds,
        max_rate=args.max_rate if args.max_rate and args.max_rate > 0 else None, concurrency=max(1, args.concurrency),
        seconds=seconds, levels=levels, scheduled_share=min(1.0, max(0.0, args.scheduled_share)), lead=lead,
        reference_seconds=max(0.5, pick(args.reference_seconds, 10.0, 2.0)), shorten=max(1.0, args.shorten),
        agents=max(1, args.agents), warmup=max(1, int(pick(args.warmup, 10, 4))),
        stall=max(1.0, pick(args.stall, 20.0, 10.0)), quiet_load=args.quiet_load,
        quiet_timeout=max(0.0, pick(args.quiet_timeout, 60.0, 0.0)), keep=args.keep,
    )


async def main(argv: list[str] | None = None) -> int:
    """Run, print the summary, log findings and problems on stderr, and the JSON line last; 1 on any problem."""
    settings = settings_from(argv)
    return await bench_main("bench-latency-", settings.keep, functools.partial(run, settings), print_report,
                            lambda result: kind_notes(result["engine_process"].get("log_unusual_kinds", {})))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
