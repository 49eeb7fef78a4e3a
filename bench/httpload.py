"""Helpers for HTTP benchmarks: a closed-loop load driver and readings from ``/proc``.

The driver keeps a fixed number of requests in flight (workers pulling the next index)
so the server sees a steady concurrency; every request's status and latency are kept so
a benchmark can refuse figures that were bought with errors. The ``/proc`` readers give
the memory and CPU of a server process from the outside, without instrumenting it.
"""

from __future__ import annotations

import asyncio
import os
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

    def latency_ms(self, quantile: float) -> float:
        """Latency at ``quantile`` (0..1) in milliseconds; 0 without requests."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

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


async def drive(total: int, concurrency: int, call: Call) -> LoadResult:
    """Run ``call(0..total-1)`` with ``concurrency`` requests in flight; time the whole batch.

    Workers rather than one task per request: fewer tasks means less client CPU, and
    the client shares the machine with the server.
    """
    result = LoadResult(requests=total, seconds=0.0)
    indices = iter(range(total))

    async def worker() -> None:
        for index in indices:
            began = time.perf_counter()
            try:
                status = await call(index)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                status = -1
                result.failures.append(f"#{index}: {type(exc).__name__}: {exc}")
            result.latencies.append(time.perf_counter() - began)
            result.statuses[status] += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, total)))))
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
