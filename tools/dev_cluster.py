"""A cluster on one machine for development (``./dev cluster [N]``): a throwaway PostgreSQL, the
platform process and N engine nodes on consecutive ports, sharing one database, one secret key
and the platform (its platform_key generated into the work folder); prints the URLs and an
administrator key, and stops everything on Ctrl-C or SIGTERM (the nodes first, so they give their
partitions back while the database is still up).

``--check`` starts the cluster, creates one callback through the first node, waits until it is
COMPLETED (read through the last node), and stops: the smoke test of a cluster (``tests/cli/test_dev_cluster.py``).

Everything lives in a temporary folder (the config copied from ``config/``, each node's data
folder and log), removed on stop unless ``--keep`` or ``--work`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (tools/dev_cluster.py): the repository is the root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import ClientSession, ClientTimeout
from cryptography.fernet import Fernet

from tools.postgres import TempPostgres

REPO = Path(__file__).resolve().parent.parent
CALLBACKS = "/genesys/1/service/callback"
CHECK_NUMBER = "+15550900001"  # no dial rule matches: answered at the first dial


async def wait_answering(url: str, timeout: float, exited: Callable[[], str | None]) -> None:
    """Wait until ``url`` answers 200; ``RuntimeError`` with ``exited()``'s words as soon as the
    process behind it has ended, ``TimeoutError`` naming the last answer after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    async with ClientSession(timeout=ClientTimeout(total=5)) as http:
        while time.monotonic() < deadline:
            if (why := exited()) is not None:
                raise RuntimeError(why)
            try:
                async with http.get(url) as r:
                    if r.status == 200:
                        return
                    last = f"{r.status} {await r.text()}"
            except OSError as e:
                last = e
            await asyncio.sleep(0.1)
    raise TimeoutError(f"not answering 200 on {url} within {timeout:g} s ({last})")


@dataclass
class Child:
    """One process of the cluster (the platform or a node), its URL and its log."""

    name: str
    url: str
    log: Path
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as out:
            # Its own session: Ctrl-C reaches this tool only, which stops the children in order.
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env={**os.environ, **self.env}, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """The exit code; killed when it does not stop within ``timeout``."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"{self.name} did not stop within {timeout:g} s: killed", file=sys.stderr)
            self.proc.kill()
            return self.proc.wait(5)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text()[-chars:]
        except OSError:
            return ""


class DevCluster:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cbe-cluster-"))
        self.keep = bool(args.keep or args.work)
        self.admin_key = secrets.token_urlsafe(24)
        self.postgres: TempPostgres | None = None
        self.database_url = args.database_url or ""
        self.platform: Child | None = None
        self.nodes: list[Child] = []

    # -- start ------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        config = self._config()
        key_file = self.work / "secret.key"
        if not key_file.exists():
            key_file.write_bytes(Fernet.generate_key())
            key_file.chmod(0o600)
        platform_key = self.work / "platform.key"  # the platform link's secret, for the platform and every node
        if not platform_key.exists():
            platform_key.touch(0o600)
            platform_key.write_text(secrets.token_urlsafe(32))
        if not self.database_url:
            self.postgres = TempPostgres().start()
            self.database_url = self.postgres.new_database()
        python = sys.executable
        port = self.args.platform_port
        self.platform = Child("platform", f"http://127.0.0.1:{port}", self.work / "platform.log",
                              [python, "run_engine.py", "platform", "--config", str(config), "--port", str(port),
                               "--log-level", self.args.log_level],
                              {"CALLBACK_ENGINE_PLATFORM_KEY_FILE": str(platform_key)})
        self.platform.start()
        await self._up(self.platform, "/health")
        for i in range(1, self.args.nodes + 1):
            port = self.args.port + i - 1
            url = f"http://127.0.0.1:{port}"
            data = self.work / f"node{i}"
            env = {"CALLBACK_ENGINE_DATABASE_URL": self.database_url,
                   "CALLBACK_ENGINE_CONFIG_DIR": str(config),
                   "CALLBACK_ENGINE_NODE_NAME": f"node{i}",
                   "CALLBACK_ENGINE_INTERNAL_URL": url,
                   "CALLBACK_ENGINE_PLATFORM_URL": self.platform.url,
                   "CALLBACK_ENGINE_CLUSTER_LEASE_SECONDS": str(self.args.lease),
                   "CALLBACK_ENGINE_CLUSTER_HEARTBEAT_SECONDS": str(self.args.heartbeat),
                   "CALLBACK_ENGINE_SECRET_KEY_FILE": str(key_file),
                   "CALLBACK_ENGINE_PLATFORM_KEY_FILE": str(platform_key),
                   "CALLBACK_ENGINE_ADMIN_KEY": self.admin_key,
                   "CALLBACK_ENGINE_LOG_LEVEL": self.args.log_level}
            self.nodes.append(Child(f"node{i}", url, self.work / f"node{i}.log",
                                    [python, "run_engine.py", "serve", "--data", str(data), "--port", str(port)],
                                    env))
        for node in self.nodes:  # one after the other: the first creates the schema
            node.start()
            await self._up(node, "/health/ready")

    def _config(self) -> Path:
        """A copy of the shipped settings folder (API changes and simulator PUTs land in it, not
        in the repository), with the simulator's time scale when one is given."""
        config = self.work / "config"
        if not config.exists():
            shutil.copytree(REPO / "config", config)
        if self.args.time_scale is not None:
            toml = config / "simulator.toml"
            text = re.sub(r"(?m)^time_scale\s*=.*$", f"time_scale = {float(self.args.time_scale)!r}",
                          toml.read_text())
            toml.write_text(text)
        return config

    async def _up(self, child: Child, path: str) -> None:
        """Wait until ``child`` answers 200 on ``path`` (a node: ready, i.e. it holds partitions)."""
        def exited() -> str | None:
            if child.running():
                return None
            return f"{child.name} exited with {child.proc and child.proc.returncode}:\n{child.tail()}"

        try:
            await wait_answering(child.url + path, self.args.start_timeout, exited)
        except TimeoutError as e:
            raise RuntimeError(f"{child.name} {e}:\n{child.tail()}") from None

    def describe(self) -> str:
        lines = [f"cluster of {len(self.nodes)} node(s) in {self.work}",
                 f"  database  {self.database_url}"]
        if self.platform is not None:
            lines.append(f"  platform  {self.platform.url}  (log: {self.platform.log})")
        lines += [f"  {n.name:<9} {n.url}  (log: {n.log})" for n in self.nodes]
        lines.append(f"  admin key {self.admin_key}")
        lines.append(f"  try: curl -H 'x-api-key: {self.admin_key}' {self.nodes[0].url if self.nodes else ''}"
                     "/health/ready")
        return "\n".join(lines)

    # -- stop -------------------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """SIGTERM every node at once (each gives its partitions back), then the platform, then the
        database. The problems seen on the way: a node that exited with an error code."""
        problems: list[str] = []
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            code = node.wait(30)
            if code not in (0, None):
                problems.append(f"{node.name} exited with {code}:\n{node.tail()}")
        if self.platform is not None:
            self.platform.terminate()
            self.platform.wait(10)
        if self.postgres is not None:
            try:
                self.postgres.stop()
            except subprocess.CalledProcessError as e:
                problems.append(f"stopping PostgreSQL failed: {e.stderr!r}")
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        return problems

    # -- the smoke test -----------------------------------------------------------------------------
    async def check(self) -> dict[str, Any]:
        """One callback created through the first node, followed through the last one (any node
        reads every callback) until COMPLETED: its record."""
        headers = {"x-api-key": self.admin_key}
        node = self.nodes[-1].url
        async with ClientSession(timeout=ClientTimeout(total=10)) as http:
            async with http.post(f"{self.nodes[0].url}{CALLBACKS}/callback", json={"_customer_number": CHECK_NUMBER},
                                 headers=headers) as r:
                body = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"create through {self.nodes[0].name}: {r.status} {body}")
                cid = body["_id"]
            deadline = time.monotonic() + self.args.check_timeout
            record: dict[str, Any] = {}
            while time.monotonic() < deadline:
                async with http.get(f"{node}{CALLBACKS}", params={"_id": cid}, headers=headers) as r:
                    found = await r.json() if r.status == 200 else []
                record = found[0] if found else record
                if record.get("_callback_state") == "COMPLETED":
                    return record
                await asyncio.sleep(0.2)
        raise RuntimeError(f"callback {cid} not COMPLETED within {self.args.check_timeout:g} s: "
                           f"{record.get('_callback_state')}")


async def run(args: argparse.Namespace) -> int:
    cluster = DevCluster(args)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    code = 0
    try:
        start = asyncio.ensure_future(cluster.start())
        stop_wait = asyncio.ensure_future(stopping.wait())
        await asyncio.wait([start, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        if not start.done():  # Ctrl-C while starting
            start.cancel()
            await asyncio.gather(start, return_exceptions=True)
            return 130
        stop_wait.cancel()
        start.result()
        print(cluster.describe(), flush=True)
        if args.check:
            record = await cluster.check()
            print(f"check: callback {record['_id']} COMPLETED ({record.get('_callback_reason')}), created through "
                  f"{cluster.nodes[0].name}, read through {cluster.nodes[-1].name}", flush=True)
        else:
            print("Ctrl-C stops the cluster", flush=True)
            await stopping.wait()
    except Exception as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        code = 1
    finally:
        problems = cluster.stop()
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr, flush=True)
        code = code or (1 if problems else 0)
        print("cluster stopped", flush=True)
    return code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dev_cluster.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=2, help="engine nodes (default 2)")
    p.add_argument("--port", type=int, default=8081, help="the first node's port; the others follow (default 8081)")
    p.add_argument("--platform-port", type=int, default=8090, help="the platform process's port (default 8090)")
    p.add_argument("--database-url", help="use this PostgreSQL database instead of a throwaway server")
    p.add_argument("--lease", type=float, default=3.0, help="cluster_lease_seconds (default 3)")
    p.add_argument("--heartbeat", type=float, default=0.5, help="cluster_heartbeat_seconds (default 0.5)")
    p.add_argument("--time-scale", type=float, help="the simulator's time_scale (default: config/simulator.toml)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--work", help="keep everything in this folder (kept after stop)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder after stop")
    p.add_argument("--start-timeout", type=float, default=60.0, help="seconds for each process to be ready")
    p.add_argument("--check", action="store_true",
                   help="create one callback through node 1, wait until it is COMPLETED (read through the last), stop")
    p.add_argument("--check-timeout", type=float, default=60.0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.nodes < 1:
        print("error: --nodes must be at least 1", file=sys.stderr)
        return 2
    if args.check and args.time_scale is None:
        args.time_scale = 100.0  # a callback in about a second
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
