"""Helpers for HTTP benchmarks: load drivers and readings from ``/proc``.

The closed-loop driver keeps a fixed number of requests in flight (workers pulling the
next index) so the server sees a steady concurrency; the open-loop one starts requests at
a fixed rate. Every request's status and latency are kept so a benchmark can refuse
figures that were bought with errors. The ``/proc`` readers give the memory, CPU and
write calls of a server process from the outside, without instrumenting it, the CPU of
the whole machine (``Cpu``: who used it over a timed stretch), and whether the machine
is quiet enough to measure on.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

#: A request under test: gets its index, returns the HTTP status (``-1``: no answer).
Call = Callable[[int], Awaitable[int]]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class LoadResult:
    """What one timed batch of requests produced."""

    requests: int
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        """Requests answered 200."""
        return self.statuses.get(200, 0)

    @property
    def rate(self) -> float:
        """Successful requests per second of wall time."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        """Latency at quantile ``q`` (0..1) in milliseconds; 0 without requests."""
        return 1000 * quantile(sorted(self.latencies), q)

    def summary(self) -> dict[str, Any]:
        """The figures worth keeping, JSON-ready."""
        return {
            "requests": self.requests, "ok": self.ok, "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "latency_ms_p50": round(self.latency_ms(0.50), 2),
            "latency_ms_p99": round(self.latency_ms(0.99), 2),
            "latency_ms_max": round(self.latency_ms(1.0), 2),
            "failures": self.failures[:5],
        }


def quantile(ordered: list[float], q: float) -> float:
    """Value at quantile ``q`` (0..1) of an ascending list (nearest rank); 0 when empty."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _timed(result: LoadResult, index: int, call: Call) -> None:
    """Run ``call(index)`` and note its status (``-1``: no answer) and latency in ``result``."""
    began = time.perf_counter()
    try:
        status = await call(index)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        status = -1
        result.failures.append(f"#{index}: {type(exc).__name__}: {exc}")
    result.latencies.append(time.perf_counter() - began)
    result.statuses[status] += 1


async def drive(total: int, concurrency: int, call: Call) -> LoadResult:
    """Run ``call(0..total-1)`` with ``concurrency`` requests in flight; time the whole batch.

    Workers rather than one task per request: fewer tasks means less client CPU, and
    the client shares the machine with the server.
    """
    result = LoadResult(requests=total, seconds=0.0)
    indices = iter(range(total))

    async def worker() -> None:
        for index in indices:
            await _timed(result, index, call)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, total)))))
    result.seconds = time.perf_counter() - began
    return result


async def paced(total: int, rate: float, call: Call) -> LoadResult:
    """Open loop: request i starts i / rate seconds in, whatever the answers before it did.

    The server then sees a steady arrival rate, and any queueing shows in the latency instead of
    slowing the load down as a closed loop would.
    """
    result = LoadResult(requests=total, seconds=0.0)
    began = time.perf_counter()

    async def one(index: int) -> None:
        await asyncio.sleep(max(0.0, began + index / rate - time.perf_counter()))
        await _timed(result, index, call)

    await asyncio.gather(*(one(i) for i in range(total)))
    result.seconds = time.perf_counter() - began
    return result


def memory_bytes(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of a process, in bytes (``/proc`` reports kB)."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def machine_seconds() -> tuple[float, float]:
    """Busy and stolen CPU time of the whole machine so far, all CPUs together.

    Busy minus what the server and the client used is someone else's load; steal is
    time the hypervisor gave to a neighbour. Either one marks a disturbed round, not
    a slow engine.
    """
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS, steal / _CLOCK_TICKS


def write_syscalls(pid: int) -> int:
    """Write system calls of a process so far (all threads): a proxy for a server's commits."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    return 0


@dataclass
class CpuUse:
    """CPU seconds over ``wall`` seconds: per measured process (by role) and this client
    (``client``), what other processes used (``foreign``), what the hypervisor stole (``steal``)."""

    wall: float
    seconds: dict[str, float]
    foreign: float
    steal: float

    def shares(self) -> dict[str, float]:
        """Shares of one core (1.0 = one core): ``{role}_cpu_share`` of each process and of the
        client, ``foreign_cpu_share`` of everyone else, ``steal_share`` of the hypervisor."""
        out = {f"{role}_cpu_share": round(used / self.wall, 3) for role, used in self.seconds.items()}
        out["foreign_cpu_share"] = round(self.foreign / self.wall, 3)
        out["steal_share"] = round(self.steal / self.wall, 3)
        return out


class Cpu:
    """CPU of some processes (by role), of this client and of everyone else over one stretch.

    Measuring starts when it is made; ``used()`` reads what went by since.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.began_machine = machine_seconds()
        self.began = {role: cpu_seconds(pid) for role, pid in self.pids.items()}
        self.began_client = time.process_time()
        self.began_wall = time.perf_counter()

    def used(self) -> CpuUse:
        """CPU seconds used since the start, by role, the client, others and the hypervisor."""
        wall = time.perf_counter() - self.began_wall
        seconds = {role: cpu_seconds(pid) - self.began[role] for role, pid in self.pids.items()}
        seconds["client"] = time.process_time() - self.began_client
        busy, steal = (now - then for now, then in zip(machine_seconds(), self.began_machine, strict=True))
        return CpuUse(wall, seconds, max(0.0, busy - sum(seconds.values())), steal)


async def wait_quiet(pid: int, *, window: float = 0.5, busy_share: float = 0.02,
                     calm_windows: int = 3, timeout: float = 30.0) -> float:
    """Wait until a process uses under ``busy_share`` of a CPU for ``calm_windows`` windows.

    Memory read while the writer or the collector is still at work would be a
    snapshot of a transient, not of the idle sessions. Returns the seconds waited.
    """
    began = time.monotonic()
    calm = 0
    last = cpu_seconds(pid)
    while calm < calm_windows:
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"process {pid} did not become quiet within {timeout:g} s")
        await asyncio.sleep(window)
        now = cpu_seconds(pid)
        calm = calm + 1 if now - last < busy_share * window else 0
        last = now
    return time.monotonic() - began


async def wait_healthy(client: aiohttp.ClientSession, url: str, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with client.get(url) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:g} s")


# -- a quiet machine -------------------------------------------------------------------------

#: Another process using more than this share of a core makes the machine busy.
BUSY_PROCESS = 0.10


def loadavg1() -> float:
    """The 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def process_times() -> dict[int, float]:
    """CPU seconds so far of every process we may read."""
    out: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = cpu_seconds(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


def command_of(pid: int) -> str:
    """A process's command line, shortened, for the report."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:160]
    except OSError:
        return "?"


async def busy_processes(seconds: float) -> list[str]:
    """Other processes using more than ``BUSY_PROCESS`` of a core over ``seconds``: someone's benchmark."""
    before = process_times()
    await asyncio.sleep(seconds)
    after = process_times()
    mine = os.getpid()
    return [f"{pid} ({(after[pid] - before[pid]) / seconds:.2f} core): {command_of(pid)}"
            for pid in sorted(after) if pid != mine and pid in before
            and (after[pid] - before[pid]) / seconds > BUSY_PROCESS]


async def wait_machine_quiet(threshold: float, timeout: float) -> dict[str, Any]:
    """Wait until nobody else is busy and the load average is under ``threshold``, at most
    ``timeout`` seconds; report what was seen (progress and a still-busy machine on stderr)."""
    began = time.monotonic()
    first: dict[str, Any] | None = None
    last_note = began
    while True:
        busy = await busy_processes(2.0)
        load = loadavg1()
        if first is None:
            first = {"loadavg1": load, "busy_processes": busy}
        quiet = load < threshold and not busy
        waited = time.monotonic() - began
        if quiet or waited >= timeout:
            break
        if time.monotonic() - last_note > 30:
            print(f"waiting for a quiet machine: load {load:.2f}, busy: {busy or 'none'}", file=sys.stderr)
            last_note = time.monotonic()
        await asyncio.sleep(3.0)
    if not quiet:
        print(f"WARNING: machine still busy after {waited:.0f} s (load {load:.2f}, {busy}); measuring anyway",
              file=sys.stderr)
    return {"quiet_at_start": quiet, "waited_seconds": round(waited, 1), "threshold_loadavg1": threshold,
            "first_seen": first, "loadavg1_at_start": load, "busy_processes_at_start": busy}
