"""Shared configuration through the API of two engine nodes (issue 14, item 5): two nodes in this
process on one PostgreSQL database, the platform as its own process, each node with its own copy
of the configuration files. What is changed through one node is served by the other within a
second (a service, a flow: new sessions start on the new version there); a key made by the command
works on both; a console sign-in made on one is valid on the other."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from engine.api.appkeys import RUNTIME
from engine.app import create_app
from engine.settings import Settings
from tests.callbacks.conftest import write_config
from tests.conftest import REPO
from tests.support.fake_google import new_key
from tests.support.platform_process import PlatformProcess
from tests.support.ports import free_port

ADMIN = {"x-api-key": "admin-key"}
LEASE, HEARTBEAT = 3.0, 0.5


@pytest.fixture
async def two_nodes(aiohttp_client, postgres, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[TestClient, TestClient, str]]:
    secret = Fernet.generate_key().decode()
    monkeypatch.setenv("CALLBACK_ENGINE_SECRET_KEY", secret)  # one key for every node
    config = write_config(tmp_path)
    platform = PlatformProcess(config, tmp_path / "platform.log")
    await platform.start()
    database_url = postgres.new_database()
    try:
        clients = []
        for name in ("a", "b"):
            own = tmp_path / name
            shutil.copytree(config, own / "config")
            shutil.copytree(REPO / "scxml", own / "flows")
            port = free_port()
            settings = Settings.load(
                config_dir=own / "config", env={}, data_dir=own / "data", flows_dir=own / "flows",
                admin_key="admin-key", flow_watch_interval=0, port=port, database_url=database_url, node_name=name,
                platform_url=platform.url, cluster_lease_seconds=LEASE, cluster_heartbeat_seconds=HEARTBEAT)
            clients.append(await aiohttp_client(create_app(settings), server_kwargs={"port": port}))
        yield clients[0], clients[1], database_url
    finally:
        platform.stop()


async def within_a_second(read: Callable[[], Awaitable[bool]]) -> float:
    began = time.monotonic()
    while not await read():
        assert time.monotonic() - began < 1.0, "not served by the other node within a second"
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def test_a_service_and_a_flow_changed_on_one_node_are_served_by_the_other(two_nodes) -> None:
    a, b, _ = two_nodes
    service = (await (await b.get("/admin/services/callback", headers=ADMIN)).json())["configured"]
    answer = await a.put("/admin/services/callback", json={**service, "_ttl": 4242}, headers=ADMIN)
    assert answer.status == 200, await answer.text()

    async def b_has_it() -> bool:
        found = await (await b.get("/admin/services/callback", headers=ADMIN)).json()
        return found["effective"]["_ttl"] == 4242

    await within_a_second(b_has_it)

    v2 = (REPO / "scxml/hello.scxml").read_text() + "<!-- version 2 -->\n"
    answer = await a.put("/admin/flows/hello", data=v2, headers={**ADMIN, "Content-Type": "application/scxml+xml"})
    assert answer.status == 200 and (await answer.json())["version"] == 2, await answer.text()

    async def b_serves_v2() -> bool:
        return (await (await b.get("/admin/flows/hello", headers=ADMIN)).json())["current"] == 2

    await within_a_second(b_serves_v2)
    deadline = time.monotonic() + 20  # b takes its share of the partitions from a (a rebalance)
    while (started := await b.post("/scxml/session/start", data={"src": "hello"}, headers=ADMIN)).status == 503:
        assert time.monotonic() < deadline, "b holds no partition"
        await asyncio.sleep(0.1)
    assert started.status == 200, await started.text()
    assert (await started.json())["version"] == 2  # a new session on the other node starts on v2

    # A reload on a node whose files are as they were imported changes nothing (its callback.json is
    # stale: the API changed the service since); a file edited there is imported and served by both.
    answer = await b.post("/admin/config/reload", headers=ADMIN)
    assert (await answer.json())["changed"] == []
    path = b.app[RUNTIME].settings.config_dir / "business-hours" / "office.json"
    path.write_text(path.read_text().replace('"Europe/Paris"', '"Asia/Tokyo"'))
    answer = await b.post("/admin/config/reload", headers=ADMIN)
    assert (await answer.json())["changed"] == ["business_hours office"]

    async def a_has_it() -> bool:
        return (await (await a.get("/admin/business-hours/office", headers=ADMIN)).json())["time_zone"] == "Asia/Tokyo"

    await within_a_second(a_has_it)


async def test_a_key_made_by_the_command_and_a_console_sign_in_work_on_both_nodes(two_nodes, tmp_path: Path) -> None:
    a, b, database_url = two_nodes
    env = {**os.environ, "CALLBACK_ENGINE_DATABASE_URL": database_url}
    made = await asyncio.to_thread(subprocess.run, [
        sys.executable, str(REPO / "run_engine.py"), "keys", "--data", str(tmp_path / "cli"), "create",
        "--role", "administrator", "--name", "ops"], capture_output=True, text=True, env=env, timeout=60)
    assert made.returncode == 0, made.stderr
    key = {"x-api-key": made.stdout.strip()}

    async def works_on_both() -> bool:
        answers = [await node.get("/admin/services", headers=key) for node in (a, b)]
        return all(r.status == 200 for r in answers)

    await within_a_second(works_on_both)

    signed = await a.post("/ui/session", json={"key": made.stdout.strip()})
    assert signed.status == 200, await signed.text()
    cookie = signed.cookies["cbe_console"].value

    async def valid_on_b() -> bool:
        found = await b.get("/ui/session", headers={"Cookie": f"cbe_console={cookie}"})
        return found.status == 200

    await within_a_second(valid_on_b)
    assert (await (await b.get("/ui/session", headers={"Cookie": f"cbe_console={cookie}"})).json())["name"] == "ops"


async def test_push_credentials_set_on_one_node_are_used_by_the_other(two_nodes) -> None:
    """The sealed FCM credentials are one engine value: the other node reads them again when told."""
    a, b, _ = two_nodes
    assert (await b.get("/admin/push/credentials", headers=ADMIN)).status == 404
    body = {"project_id": "demo-project", "client_email": "cbe@demo-project.iam.gserviceaccount.com",
            "private_key": new_key()[0]}
    answer = await a.put("/admin/push/credentials", json=body, headers=ADMIN)
    assert answer.status == 200, await answer.text()
    shown = await (await a.get("/admin/push/credentials", headers=ADMIN)).json()

    async def b_has_them() -> bool:
        found = await b.get("/admin/push/credentials", headers=ADMIN)
        return found.status == 200 and await found.json() == shown

    await within_a_second(b_has_them)
