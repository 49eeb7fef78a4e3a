"""An engine for the console's read endpoints: the callback tests' services and fast simulator,
one service more whose callbacks wait (a queue without agents, the default TTL), and keys of
every staff role."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.app import create_app
from engine.settings import Settings
from tests.callbacks.conftest import ADMIN, BASE, CLIENT, write_config
from tests.conftest import REPO
from tests.support.engine_process import free_port

__all__ = ["ADMIN", "BASE", "CLIENT", "create", "keys_of_roles", "make_engine"]


async def make_engine(aiohttp_client, tmp_path: Path, **settings):
    config = write_config(tmp_path)
    (config / "services" / "waiting.json").write_text(json.dumps(
        {"_service": "callback", "_urs_virtual_queue": "Empty_VQ"}))
    flows = tmp_path / "flows"  # a copy: flow uploads write to the folder
    shutil.copytree(REPO / "scxml", flows, dirs_exist_ok=True)
    port = free_port()
    loaded = Settings.load(config_dir=config, env={}, data_dir=tmp_path / "data", flows_dir=flows,
                           admin_key="admin-key", client_key="client-key", flow_watch_interval=0, port=port,
                           **settings)
    return await aiohttp_client(create_app(loaded), server_kwargs={"port": port})


async def create(client, service: str, **params) -> dict:
    r = await client.post(f"{BASE}/{service}", json=params, headers=CLIENT)
    body = await r.json()
    assert r.status == 200, body
    return body


async def keys_of_roles(client, *roles: str) -> dict[str, dict[str, str]]:
    found = {}
    for role in roles:
        r = await client.post("/admin/keys", json={"name": f"{role}-key", "role": role}, headers=ADMIN)
        assert r.status == 201, await r.text()
        found[role] = {"x-api-key": (await r.json())["key"]}
    return found
