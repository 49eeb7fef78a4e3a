"""An engine application on a temporary data folder, driven through a real HTTP client."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.app import create_app
from engine.settings import Settings
from tests.conftest import REPO
from tests.support.engine_process import free_port

ADMIN = {"x-api-key": "admin-key"}
CLIENT = {"Authorization": "Bearer client-key"}


def make_settings(tmp_path: Path, **kw) -> Settings:
    flows = tmp_path / "flows"
    if not flows.exists():
        flows.mkdir()
        shutil.copy(REPO / "scxml" / "hello.scxml", flows)
        shutil.copy(REPO / "tests" / "sessions" / "flows" / "relay.scxml", flows)
    return Settings.load(
        config_dir=tmp_path / "config", env={},
        data_dir=tmp_path / "data", flows_dir=flows, admin_key="admin-key", client_key="client-key",
        flow_watch_interval=0.05, **kw,
    )


@pytest.fixture
async def engine_client(aiohttp_client, tmp_path):
    """A client for a fresh engine; call ``engine_client(**settings)`` for other settings."""
    async def make(**kw):
        port = free_port()  # the Basic HTTP processor must know the address it is served on
        app = create_app(make_settings(tmp_path, port=port, **kw))
        return await aiohttp_client(app, server_kwargs={"port": port})

    return make
