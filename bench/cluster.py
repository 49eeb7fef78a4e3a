"""The cluster benchmark (issue 14, item 8; design §5): callbacks per second with 1, 2 and 3
engine nodes on one PostgreSQL database with the platform process, the CPU each node, the
platform and PostgreSQL spent per callback, and the failover time from a ``kill -9`` to the first
write of a moved session by another node.

On a small machine this measures the cluster's overhead, not its scaling: N nodes, the platform
and PostgreSQL share the same cores, so more nodes cannot add throughput there. The header says
how many cores there were and how loaded the machine was.

``--quick`` (2 nodes, 40 callbacks, a 2-node failover) is the smoke run of
``tests/bench/test_cluster.py``: it proves the benchmark runs; the cluster's guarantees are
proven by ``tests/cluster``. The last line of the output is one JSON object; the exit code is
1 on any problem (a callback not COMPLETED/AGENT_CONNECTED, a create refused, no failover).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository is the root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.callbacks import parse_iso
from bench.common import QUEUE, Problems, bench_main, simulator_toml
from bench.httpload import drive
from tests.support.cluster_audit import open_callbacks
from tests.support.cluster_processes import Database, ProcessCluster
from tests.support.engine_process import ADMIN_KEY
from tools.postgres import TempPostgres

CREATE = "/genesys/1/service/callback/bench"
HEADERS = {"x-api-key": ADMIN_KEY}
SERVICE = {"_service": "callback", "_urs_virtual_queue": QUEUE, "_wait_for_agent": True,
           "_max_queued_callbacks_per_service": 10_000_000, "_max_request_by_time_bucket": 10_000_000,
           "_ttl": 10_000_000, "_max_dial_attempts": 1, "_request_execution_time_buffer": 0}
TICK = os.sysconf("SC_CLK_TCK")


def write_config(root: Path, args: argparse.Namespace) -> Path:
    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "simulator.toml").write_text(simulator_toml(args.time_scale, args.agents))
    (config / "services" / "bench.json").write_text(json.dumps(SERVICE))
    return config


# -- /proc -------------------------------------------------------------------------------------

def cpu_seconds(pid: int, children: bool = False) -> float:
    """user + system CPU of ``pid`` (and of its children it has waited for, with ``children``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return used / TICK


def postgres_cpu(postgres: TempPostgres) -> float:
    """The PostgreSQL server's CPU: the postmaster found by its data folder, its exited children,
    and its live backends."""
    data = os.path.join(postgres.dir, "data")
    master = None
    procs: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        procs[int(entry.name)] = ppid
        if data in cmdline and master is None:
            master = int(entry.name)
    if master is None:
        return 0.0
    return cpu_seconds(master, children=True) + sum(cpu_seconds(p) for p, pp in procs.items() if pp == master)


def lease_losses(cluster: ProcessCluster) -> dict[str, int]:
    """How often each node fenced itself (its log's 'lost its lease' lines)."""
    return {name: node.log_path.read_text(errors="replace").count("lost its lease")
            for name, node in cluster.nodes.items() if node.log_path.exists()}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


# -- one cluster -----------------------------------------------------------------------------------

async def start_cluster(root: Path, postgres: TempPostgres, nodes: int, args: argparse.Namespace
                        ) -> tuple[ProcessCluster, Database]:
    url = postgres.new_database()
    cluster = ProcessCluster(root, write_config(root, args), url, log_level="WARNING",
                             cluster_lease_seconds=str(args.lease), cluster_audit="true")
    await cluster.start_platform()
    for i in range(1, nodes + 1):
        await cluster.start_node(f"node{i}")
    return cluster, Database(url)


async def create_all(cluster: ProcessCluster, count: int, concurrency: int, offset: int,
                     problems: Problems, rate: float | None = None) -> list[str]:
    """``count`` callbacks, round robin over the running nodes (at most ``rate`` per second): their ids."""
    urls = [n.url for n in cluster.running()]
    ids: list[str] = []
    failures: Counter = Counter()
    began = time.monotonic()

    async def one(i: int) -> int:
        if rate:
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
        for attempt in range(len(urls)):  # a node that refuses the connection (killed): the next one
            try:
                async with http.post(urls[(i + attempt) % len(urls)] + CREATE, headers=HEADERS,
                                     json={"_customer_number": f"+1666{offset + i:07d}"}) as r:
                    if r.status == 200:
                        ids.append((await r.json())["_id"])
                    else:
                        failures[f"{r.status} {(await r.text())[:120]}"] += 1
                    return r.status
            except aiohttp.ClientConnectorError:
                continue
        failures["no node accepted the connection"] += 1
        return 0

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        await drive(count, concurrency, one)
    if failures:
        problems.append(f"creates refused: {dict(failures)}")
    return ids


async def wait_completed(db: Database, ids: list[str], timeout: float) -> float:
    """Until every one of ``ids`` is COMPLETED: the time.monotonic() it was seen (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = await db.value("SELECT count(*) FROM callbacks WHERE state <> 'COMPLETED' AND id = ANY(:ids)",
                              ids=ids)
        if left == 0:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"callbacks not COMPLETED within {timeout:g} s")


def quantiles_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": round(1000 * ordered[-1], 1)}


async def judge(db: Database, ids: list[str], scale: float, problems: Problems) -> dict[str, Any]:
    rows = await db.rows("SELECT id, state, record FROM callbacks WHERE id = ANY(:ids)", ids=ids)
    records = [json.loads(r["record"]) for r in rows]
    reasons = Counter(f"{r['_callback_state']}/{r.get('_callback_reason')}" for r in records)
    if len(rows) != len(ids) or set(reasons) != {"COMPLETED/AGENT_CONNECTED"}:
        problems.append(f"{len(ids)} callbacks made, {len(rows)} stored: {dict(reasons)}")
    latencies = [(parse_iso(r["_completed_time"]) - parse_iso(r["_created_time"])) / scale for r in records
                 if r.get("_completed_time")]
    return {"reasons": dict(reasons), "create_to_complete": quantiles_ms(latencies)}


async def written_last_by(db: Database, ids: list[str] | None = None) -> dict[str, int]:
    """Callbacks per node (of ``ids``, or all), a callback being the node's whose ``session_writes``
    row is its session's last."""
    rows = await db.rows(
        "SELECT w.node, count(*) AS n FROM callbacks c JOIN LATERAL (SELECT node FROM session_writes "
        "WHERE session_id = c.session_id ORDER BY id DESC LIMIT 1) w ON true "
        "WHERE :all OR c.id = ANY(:ids) GROUP BY w.node", all=ids is None, ids=ids or [])
    return {r["node"]: r["n"] for r in rows}


async def throughput(root: Path, postgres: TempPostgres, nodes: int, args: argparse.Namespace,
                     problems: Problems) -> dict[str, Any]:
    """N nodes taking ``args.callbacks`` callbacks: rate, latencies, CPU per node and per callback."""
    cluster, db = await start_cluster(root / f"n{nodes}", postgres, nodes, args)
    try:
        await create_all(cluster, min(20, args.callbacks), 4, 9_000_000, problems)  # warm-up
        await asyncio.sleep(2)
        pids = {name: n.proc.pid for name, n in cluster.nodes.items() if n.proc}
        assert cluster.platform.proc is not None
        before = {**{name: cpu_seconds(pid) for name, pid in pids.items()},
                  "platform": cpu_seconds(cluster.platform.proc.pid), "postgres": postgres_cpu(postgres)}
        began = time.monotonic()
        ids = await create_all(cluster, args.callbacks, args.concurrency, 0, problems)
        created = time.monotonic()
        try:
            ended = await wait_completed(db, ids, args.timeout)
        except TimeoutError as e:
            raise TimeoutError(f"{e}: {await open_callbacks(db)}; lease lost {lease_losses(cluster)} time(s) "
                               "by the nodes' logs") from None
        after = {**{name: cpu_seconds(pid) for name, pid in pids.items()},
                 "platform": cpu_seconds(cluster.platform.proc.pid), "postgres": postgres_cpu(postgres)}
        cpu = {k: round(after[k] - before[k], 2) for k in after}
        per_node = await written_last_by(db, ids)
        result = {
            "nodes": nodes, "callbacks": len(ids), "seconds": round(ended - began, 2),
            "create_seconds": round(created - began, 2),
            "callbacks_per_second": round(len(ids) / (ended - began), 1), "cpu_seconds": cpu,
            "callbacks_per_node": per_node, "lease_lost_lines": lease_losses(cluster),
            "cpu_ms_per_callback_per_node": {name: round(1000 * cpu[name] / per_node[name], 2)
                                             for name in pids if per_node.get(name)},
            "cpu_ms_per_callback_all": round(1000 * sum(cpu.values()) / max(1, len(ids)), 2),
            **await judge(db, ids, args.time_scale, problems),
        }
        return result
    finally:
        await asyncio.to_thread(cluster.stop)
        await db.close()


async def failover(root: Path, postgres: TempPostgres, nodes: int, args: argparse.Namespace,
                   problems: Problems) -> dict[str, Any]:
    """A steady load on ``nodes`` nodes, the busiest killed (-9): from the kill to the others'
    claims of its partitions and to the first write of one of its sessions by another node."""
    cluster, db = await start_cluster(root / f"failover{nodes}", postgres, nodes, args)
    try:
        count = args.failover_callbacks
        rate = count / (2 * args.failover_after)  # the kill comes half way through the creates
        load = asyncio.ensure_future(create_all(cluster, count, 4, 5_000_000, problems, rate))
        await asyncio.sleep(args.failover_after)
        busiest = max((await written_last_by(db)).items(), key=lambda kv: kv[1])[0]
        last_id = await db.value("SELECT coalesce(max(id), 0) FROM session_writes")
        cluster.kill(busiest)
        killed = time.monotonic()
        t_kill = await db.value("SELECT extract(epoch from clock_timestamp())::float8")
        victims = {r["session_id"] for r in await db.rows(  # its sessions still running
            "SELECT DISTINCT ON (w.session_id) w.session_id, w.node FROM session_writes w JOIN sessions s "
            "ON s.id = w.session_id WHERE s.status = 'running' ORDER BY w.session_id, w.id DESC")
            if r["node"] == busiest}
        first_write = None
        while time.monotonic() - killed < args.timeout:
            found = await db.value("SELECT count(*) FROM session_writes WHERE id > :last AND node <> :victim "
                                   "AND session_id = ANY(:sessions)", last=last_id, victim=busiest,
                                   sessions=list(victims))
            if found:
                first_write = time.monotonic() - killed
                break
            await asyncio.sleep(0.05)
        claims = await db.rows("SELECT min(claimed_at) AS first, max(claimed_at) AS last FROM partition_claims "
                               "WHERE reason = 'expired' AND claimed_at > :t", t=t_kill)
        ids = await load
        try:
            await wait_completed(db, ids, args.timeout)
        except TimeoutError as e:
            problems.append(f"failover: {e}: {await open_callbacks(db)}")
        fail_losses = lease_losses(cluster)
        if first_write is None:
            problems.append(f"no session of {busiest} written by another node within {args.timeout:g} s")
        first_claim = claims[0]["first"] if claims else None
        return {
            "nodes": nodes, "killed": busiest, "its_sessions": len(victims),
            "kill_to_first_claim_s": None if first_claim is None else round(first_claim - t_kill, 2),
            "kill_to_last_claim_s": None if claims[0]["last"] is None else round(claims[0]["last"] - t_kill, 2),
            "kill_to_first_moved_write_s": None if first_write is None else round(first_write, 2),
            "lease_seconds": args.lease, "lease_lost_lines": fail_losses,
            **await judge(db, ids, args.time_scale, problems),
        }
    finally:
        await asyncio.to_thread(cluster.stop)
        await db.close()


async def run(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    problems = Problems()
    began = time.perf_counter()
    load_before = load_average()
    postgres = TempPostgres().start()
    runs: list[dict[str, Any]] = []
    fail: dict[str, Any] = {}
    try:
        for nodes in args.nodes:
            try:  # a failed size is a problem; the others are still measured
                runs.append(await throughput(workdir, postgres, nodes, args, problems))
            except Exception as e:
                problems.append(f"{nodes} node(s): {type(e).__name__}: {e}")
        try:
            fail = await failover(workdir, postgres, args.failover_nodes, args, problems)
        except Exception as e:
            problems.append(f"failover: {type(e).__name__}: {e}")
    finally:
        postgres.stop()
    return {"runs": runs, "failover": fail, "cpus": os.cpu_count(), "load_before": load_before,
            "load_after": load_average(), "settings": {k: v for k, v in vars(args).items()},
            "duration_seconds": round(time.perf_counter() - began, 1), "problems": problems, "ok": not problems}


def report(result: dict[str, Any]) -> None:
    cpus = result["cpus"]
    print(f"cluster benchmark on {cpus} CPU(s), load {result['load_before']} before, {result['load_after']} after")
    print(f"  N nodes + the platform + PostgreSQL on {cpus} cores: more nodes cannot add throughput here; "
          "this shows the cluster's overhead")
    for r in result["runs"]:
        print(f"  {r['nodes']} node(s): {r['callbacks']} callbacks in {r['seconds']} s = {r['callbacks_per_second']}/s;"
              f" create-to-complete {r['create_to_complete']}")
        print(f"    CPU s {r['cpu_seconds']}; ms per callback per node {r['cpu_ms_per_callback_per_node']}; "
              f"all processes {r['cpu_ms_per_callback_all']} ms per callback; lease lost {r['lease_lost_lines']}")
    f = result["failover"]
    if f:
        print(f"  failover ({f['nodes']} nodes, lease {f['lease_seconds']} s): {f['killed']} killed (-9) with "
              f"{f['its_sessions']} sessions; first claim +{f['kill_to_first_claim_s']} s, last "
              f"+{f['kill_to_last_claim_s']} s, first write of a moved session +{f['kill_to_first_moved_write_s']} s")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cluster.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default="1,2,3", help="the cluster sizes to measure (default 1,2,3)")
    p.add_argument("--callbacks", type=int, default=600)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--time-scale", type=float, default=100.0)
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--lease", type=float, default=3.0)
    p.add_argument("--failover-nodes", type=int, default=3)
    p.add_argument("--failover-callbacks", type=int, default=300)
    p.add_argument("--failover-after", type=float, default=3.0, help="seconds of load before the kill")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    p.add_argument("--quick", action="store_true", help="2 nodes, 40 callbacks, a 2-node failover")
    args = p.parse_args(argv)
    if args.quick:
        args.nodes, args.callbacks, args.failover_nodes, args.failover_callbacks = "2", 40, 2, 40
        args.failover_after, args.timeout = 1.5, 60.0
    args.nodes = [int(n) for n in str(args.nodes).split(",")]
    return args


def notes(result: dict[str, Any]) -> list[str]:
    return []


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return asyncio.run(bench_main("cbe-bench-cluster-", args.keep, lambda w: run(w, args), report, notes))


if __name__ == "__main__":
    sys.exit(main())
