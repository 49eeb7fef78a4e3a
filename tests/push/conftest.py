"""An engine wired to local fakes of Google's token endpoint and FCM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.app import create_app
from engine.settings import Settings
from tests.callbacks.conftest import write_config
from tests.conftest import REPO
from tests.support.engine_process import free_port
from tests.support.fake_google import EMAIL, PROJECT, FakeGoogle, new_key

ADMIN = {"x-api-key": "admin-key"}
DEVELOPER = {"x-api-key": "developer-key"}
CLIENT = {"x-api-key": "client-key"}
DEVICE = "fcm-device-token-" + "a" * 40


@pytest.fixture(scope="session")
def key_pair():
    return new_key()


@pytest.fixture
async def google(key_pair):
    fake = await FakeGoogle(key_pair[1]).start()
    yield fake
    await fake.stop()


def credentials_body(pem: str) -> dict:
    return {"project_id": PROJECT, "client_email": EMAIL, "private_key": pem}


@pytest.fixture
def push_engine(aiohttp_client, tmp_path, google, key_pair):
    """``await push_engine(services={...}, queue_settings={...}, simulator=...)``: client with
    credentials already set."""
    async def make(services: dict | None = None, queue_settings: dict | None = None, simulator: str | None = None,
                   set_credentials: bool = True):
        config = write_config(tmp_path)
        if simulator is not None:
            (config / "simulator.toml").write_text(simulator)
        for name, options in (services or {}).items():
            (config / "services" / f"{name}.json").write_text(json.dumps(options))
        (config / "callback-settings").mkdir(exist_ok=True)
        for queue, row in (queue_settings or {}).items():
            (config / "callback-settings" / f"{queue}.json").write_text(json.dumps(row))
        port = free_port()
        settings = Settings.load(
            config_dir=config, env={}, data_dir=tmp_path / "data", flows_dir=REPO / "scxml",
            admin_key="admin-key", client_key="client-key", developer_key="developer-key",
            flow_watch_interval=0, port=port, fcm_base_url=google.base, fcm_token_uri=google.token_uri)
        client = await aiohttp_client(create_app(settings), server_kwargs={"port": port})
        if set_credentials:
            r = await client.put("/admin/push/credentials", json=credentials_body(key_pair[0]), headers=ADMIN)
            assert r.status == 200, await r.text()
        return client

    return make


def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
