"""A cluster of real processes for tests: the platform process and engine nodes on one PostgreSQL
database, sharing a secret key and the configuration folder; a node is killed (-9), stopped
(SIGTERM) and restarted under its name. Also a read-only window on the database for assertions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.conftest import REPO
from tests.support.engine_process import EngineProcess
from tests.support.platform_process import PlatformProcess
from tools.dev_cluster import wait_answering

LEASE, HEARTBEAT = 3.0, 0.5


class ProcessCluster:
    """The platform and named nodes (``node1``...), each node a process of its own."""

    def __init__(self, root: Path, config: Path, database_url: str, **settings: str):
        self.root, self.config, self.database_url = root, config, database_url
        self.secret = Fernet.generate_key().decode()
        self.platform = PlatformProcess(config, root / "platform.log")
        self.nodes: dict[str, EngineProcess] = {}
        self.settings = settings

    async def start_platform(self) -> None:
        await self.platform.start()

    async def start_node(self, name: str, database_url: str | None = None, timeout: float = 60.0) -> EngineProcess:
        """Start ``name`` (again, on the same port and data folder when it ran before) and wait
        until it is ready (it has restored some partitions)."""
        node = self.nodes.get(name)
        if node is None:
            settings = {
                "database_url": database_url or self.database_url, "node_name": name,
                "platform_url": self.platform.url, "platform_key": self.platform.key,
                "config_dir": str(self.config), "secret_key": self.secret,
                "cluster_lease_seconds": str(LEASE), "cluster_heartbeat_seconds": str(HEARTBEAT),
                "cluster_audit": "true", "flow_watch_interval": "0", "log_level": "INFO", **self.settings}
            node = EngineProcess(self.root / name, REPO / "scxml", **settings)
            node.settings["internal_url"] = node.url
            self.nodes[name] = node
        await node.start(timeout)
        await wait_ready(node, timeout)
        return node

    def kill(self, name: str) -> None:
        self.nodes[name].kill()

    def terminate(self, name: str) -> int:
        return self.nodes[name].stop(30)

    def running(self) -> list[EngineProcess]:
        return [n for n in self.nodes.values() if n.proc is not None and n.proc.poll() is None]

    def stop(self) -> None:
        for node in self.running():
            node.stop(30)
        self.platform.stop()


async def wait_ready(node: EngineProcess, timeout: float) -> None:
    def exited() -> str | None:
        return None if node.proc is not None and node.proc.poll() is None else f"{node.url} exited:\n{node.log()}"

    try:
        await wait_answering(node.url + "/health/ready", timeout, exited)
    except TimeoutError as e:
        raise RuntimeError(f"{e}:\n{node.log()}") from None


class Database:
    """Plain SQL on the cluster's database, for what the test asserts from the data."""

    def __init__(self, url: str):
        self.engine: AsyncEngine = create_async_engine(url)

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            result = await conn.execute(text(sql), params)
            return [dict(r._mapping) for r in result]

    async def value(self, sql: str, **params: Any) -> Any:
        found = await self.rows(sql, **params)
        return next(iter(found[0].values())) if found else None

    async def close(self) -> None:
        await self.engine.dispose()


def write_cluster_config(root: Path, simulator: str, services: dict[str, dict]) -> Path:
    """A configuration folder for a test cluster: the simulator, the services, and notifications
    allowed to a loopback receiver."""
    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "simulator.toml").write_text(simulator)
    for name, service in services.items():
        (config / "services" / f"{name}.json").write_text(json.dumps(service))
    (config / "notifications.json").write_text(json.dumps({"allowed_networks": ["127.0.0.0/8"]}))
    return config
