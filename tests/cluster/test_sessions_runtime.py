"""The runtime of a cluster node (issue 14, step 5): a node with the embedded simulator is a cluster
of one (a second node refuses to start beside it, saying why); a restart under the same name takes
over at once; sessions started through the manager land in partitions the node holds; the
simulated clock has one origin in the database and no batch writes it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from engine.ids import partition_of
from engine.runtime import Runtime
from engine.settings import Settings
from engine.storage.membership import ClusterRefused
from tests.conftest import REPO


def settings(tmp_path: Path, url: str, node: str, time_scale: float = 1.0) -> Settings:
    config = tmp_path / f"config-{node}"
    if not config.exists():
        shutil.copytree(REPO / "config", config)
        text = (config / "simulator.toml").read_text().replace("time_scale = 1.0", f"time_scale = {time_scale}")
        (config / "simulator.toml").write_text(text)
    return Settings.load(config_dir=config, env={}, data_dir=tmp_path / f"data-{node}", flows_dir=REPO / "scxml",
                         admin_key="admin-key", client_key="client-key", flow_watch_interval=0, database_url=url,
                         node_name=node, cluster_lease_seconds=3.0, cluster_heartbeat_seconds=0.5)


async def started(s: Settings) -> Runtime:
    runtime = await Runtime.build(s)
    try:
        await runtime.start()
    except BaseException:
        await runtime.close()
        raise
    return runtime


async def test_the_embedded_simulator_is_a_cluster_of_one(postgres, tmp_path: Path) -> None:
    url = postgres.new_database()
    first = await started(settings(tmp_path, url, "n1"))
    try:
        assert first.membership is not None and len(first.membership.held) == 64
        session = first.manager.start_flow("hello")
        assert partition_of(session.id) in first.membership.held
        await first.manager.commit()
        with pytest.raises(ClusterRefused, match=r"embedded simulator.*platform_url"):
            await started(settings(tmp_path, url, "n2"))
    finally:
        await first.close()
    # Stopped, it left: a node may start again, and the same name restarting takes over at once.
    again = await started(settings(tmp_path, url, "n1"))
    try:
        assert len(again.membership.held) == 64
    finally:
        await again.close()


async def test_the_simulated_clock_has_one_origin(postgres, tmp_path: Path) -> None:
    url = postgres.new_database()
    runtime = await started(settings(tmp_path, url, "n1", time_scale=20))
    try:
        origin = json.loads(await runtime.store.get_value("clock_origin"))
        assert origin["scale"] == 20
        runtime.manager.start_flow("hello")
        await runtime.manager.commit()
        assert await runtime.store.get_value("clock") is None  # no batch writes it in a cluster
        before = runtime.clock.now()
    finally:
        await runtime.close()
    stopped = time.time()
    runtime = await started(settings(tmp_path, url, "n1", time_scale=20))
    try:
        # Simulated time went on while the node was down, from the same origin, never back.
        now = runtime.clock.now()
        assert now >= before + (time.time() - stopped) * 20 * 0.9
        assert json.loads(await runtime.store.get_value("clock_origin")) == origin
    finally:
        await runtime.close()
