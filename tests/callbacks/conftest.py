"""An engine with callback services and a fast simulator, driven over real HTTP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.app import create_app
from engine.settings import Settings
from tests.conftest import REPO
from tests.support.engine_process import free_port
from tests.support.eventually import eventually

CLIENT = {"x-api-key": "client-key"}
ADMIN = {"x-api-key": "admin-key"}
BASE = "/genesys/1/service/callback"
SCALE = 200.0  # simulated seconds per real second: a 180 s call takes 0.9 s

SIMULATOR = f"""
time_scale = {SCALE}
ring_seconds = 8
treatment_seconds = 4
route_seconds = 1
default_handle_seconds = 60
seed = 7
[queues.Callback_VQ]
agents = 2
handle_seconds = 60
[queues.Empty_VQ]
agents = 0
handle_seconds = 60
[[dial_rules]]
pattern = '^\\+1555000'
sequence = ["busy"]
[[dial_rules]]
pattern = '^\\+1555001'
sequence = ["busy", "answer"]
[[dial_rules]]
pattern = '^\\+1555002'
sequence = ["no_answer", "answering_machine", "error"]
"""

SERVICES = {
    "callback": {"_service": "callback", "_max_dial_attempts": 3, "_dial_retry_timeout": 60},
    "callin": {"_service": "callback", "_call_direction": "USERORIGINATED", "_callin_timeout": 600},
    "nowait": {"_service": "callback", "_wait_for_agent": False},
    "tiny": {"_service": "callback", "_request_time_bucket": 60, "_max_request_by_time_bucket": 2,
             "_max_queued_callbacks_per_service": 1, "_urs_virtual_queue": "Empty_VQ"},
    "expiring": {"_service": "callback", "_ttl": 60, "_urs_virtual_queue": "Empty_VQ"},
    "office": {"_service": "callback", "_business_hours_service": "office"},
}


LOOPBACK_ALLOWED = {"allowed_networks": ["127.0.0.0/8"]}


def write_config(root: Path, flow: str = "callback") -> Path:
    """``flow``: what the services run (the default ECMAScript flow, or ``callback-python``)."""
    config = root / "config"
    (config / "services").mkdir(parents=True, exist_ok=True)
    (config / "business-hours").mkdir(exist_ok=True)
    (config / "simulator.toml").write_text(SIMULATOR)
    for name, options in SERVICES.items():
        (config / "services" / f"{name}.json").write_text(json.dumps({**options, "_service": flow}))
    shutil.copy(REPO / "config" / "business-hours" / "office.json", config / "business-hours")
    # Receivers and fakes in tests listen on loopback, which the outbound URL policy refuses
    # unless it is allowed explicitly.
    (config / "notifications.json").write_text(json.dumps(LOOPBACK_ALLOWED))
    return config


async def make_client(aiohttp_client, tmp_path: Path, flow: str = "callback"):
    port = free_port()
    settings = Settings.load(
        config_dir=write_config(tmp_path, flow), env={}, data_dir=tmp_path / "data", flows_dir=REPO / "scxml",
        admin_key="admin-key", client_key="client-key", flow_watch_interval=0, port=port)
    return await aiohttp_client(create_app(settings), server_kwargs={"port": port})


@pytest.fixture
async def cb_client(aiohttp_client, tmp_path):
    return await make_client(aiohttp_client, tmp_path)


async def create(client, service: str, headers: dict[str, str] = CLIENT, **params) -> str:
    r = await client.post(f"{BASE}/{service}", json=params, headers=headers)
    body = await r.json()
    assert r.status == 200, body
    return body["_id"]


async def record(client, cid: str, headers: dict[str, str] = CLIENT) -> dict:
    r = await client.get(f"{BASE}?_id={cid}", headers=headers)
    [found] = await r.json()
    return found


async def wait_state(client, cid: str, state: str, timeout: float = 15.0) -> dict:
    """The record once it is in ``state``; ``_seen`` holds the states it was polled in on the way."""
    seen: list[str] = []

    async def probe() -> dict:
        rec = await record(client, cid)
        if not seen or seen[-1] != rec["_callback_state"]:
            seen.append(rec["_callback_state"])
        return rec

    rec = await eventually(probe, lambda rec: rec["_callback_state"] == state, timeout=timeout,
                           expected=f"callback {cid} in {state}", seen=lambda _: f"went through {seen}")
    rec["_seen"] = seen
    return rec


async def events(client, service: str, cid: str) -> list[dict]:
    r = await client.get(f"{BASE}/{service}/{cid}/events", headers=CLIENT)
    assert r.status == 200
    return await r.json()
