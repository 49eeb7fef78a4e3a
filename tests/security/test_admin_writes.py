"""Issue 9 item 8: admin writes are durable and atomic. A write the disk refuses answers 503 with
the reason, and changes nothing: not the answer of a GET, not the registry in memory, not what a
restart loads; no temp file is left behind. The disk failure is real to the engine: ``fsync`` or
``rename`` of files under the test's config and flows folders fail with ENOSPC/EROFS (tests run
as root, where a read-only mode would not stop a write)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.api.appkeys import RUNTIME
from engine.app import create_app
from engine.settings import Settings
from tests.callbacks.conftest import ADMIN, wait_state, write_config
from tests.conftest import REPO
from tests.support.engine_process import free_port

FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="idle">
<state id="idle"><transition event="go" target="done"/></state><final id="done"/></scxml>"""
LIST = "[properties]\n_enable_status_notification = notify\n[_cbe_on_dial_init]\nnotify_params = _id\n"


def settings(root: Path) -> Settings:
    flows = root / "flows"
    if not flows.exists():
        shutil.copytree(REPO / "scxml", flows)
    config = root / "config"
    if not config.exists():
        write_config(root)
        (config / "transaction-lists").mkdir()
        (config / "transaction-lists" / "Mine.cfg").write_text(LIST)
        (config / "callback-settings").mkdir()
        (config / "callback-settings" / "Callback_VQ.json").write_text('{"push_threshold_minutes": 5}')
    return Settings.load(config_dir=config, env={}, data_dir=root / "data", flows_dir=flows,
                         admin_key="admin-key", client_key="client-key", flow_watch_interval=0, port=free_port())


def _under(path: str, root: Path) -> bool:
    return os.path.realpath(path).startswith(str(root.resolve()) + os.sep) and "/data/" not in path


def disk_fails(monkeypatch, root: Path, where: str, code: int = errno.ENOSPC) -> None:
    """Make the disk refuse writes of files under ``root`` (the database is left alone)."""
    if where == "fsync":
        real = os.fsync

        def fsync(fd: int) -> None:
            if _under(os.readlink(f"/proc/self/fd/{fd}"), root):
                raise OSError(code, os.strerror(code))
            real(fd)
        monkeypatch.setattr(os, "fsync", fsync)
    else:
        real_replace = os.replace

        def replace(src, dst, **kw) -> None:
            if _under(os.fspath(dst), root):
                raise OSError(code, os.strerror(code))
            real_replace(src, dst, **kw)
        monkeypatch.setattr(os, "replace", replace)


def temp_files(root: Path) -> list[Path]:
    return [p for p in (root / "config").rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"] + \
           [p for p in (root / "flows").rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for folder in ("config", "flows") for p in sorted((root / folder).rglob("*")) if p.is_file()}


# name -> (method, path, body maker, GET path, what the message names, the in-memory view)
WRITES: dict[str, tuple[str, str, Callable | None, str, str, Callable]] = {
    "new service": ("PUT", "/admin/services/x", lambda: {"_service": "callback", "_ttl": 600},
                    "/admin/services/x", "service 'x'", lambda e: e.services.raw.get("x")),
    "changed service": ("PUT", "/admin/services/callback", lambda: {"_service": "callback", "_ttl": 999},
                        "/admin/services/callback", "service 'callback'",
                        lambda e: dict(e.services.raw["callback"])),
    "business hours": ("PUT", "/admin/business-hours/office",
                       lambda: {"time_zone": "UTC", "weekly": {"mon": ["09:00-10:00"]}},
                       "/admin/business-hours/office", "business hours 'office'",
                       lambda e: e.services.hours["office"].to_dict()),
    "transaction list": ("PUT", "/admin/transaction-lists/Mine", lambda: LIST.replace("_id", "_id, _service_name"),
                         "/admin/transaction-lists/Mine", "transaction list 'Mine'",
                         lambda e: e.lists.lists["Mine"].text),
    "callback settings": ("PUT", "/admin/callback-settings/Callback_VQ", lambda: {"push_threshold_minutes": 9},
                          "/admin/callback-settings/Callback_VQ", "CALLBACK_SETTINGS for 'Callback_VQ'",
                          lambda e: e.push.settings.rows["Callback_VQ"].to_dict()),
    "simulator": ("PUT", "/admin/simulator", None, "/admin/simulator", "the simulator settings",
                  lambda e: e.simulator.config.to_dict()),
    "new flow": ("PUT", "/admin/flows/fresh", lambda: FLOW, "/admin/flows/fresh", "flow 'fresh'",
                 lambda e: e.flows.current.get("fresh")),
    "changed flow": ("PUT", "/admin/flows/hello", lambda: FLOW, "/admin/flows/hello?format=scxml", "flow 'hello'",
                     lambda e: e.flows.current["hello"].hash),
}


async def _send(client, method: str, path: str, body) -> tuple[int, object]:
    kw = {"data": body} if isinstance(body, str) else {"json": body}
    r = await client.request(method, path, headers=ADMIN, **kw)
    return r.status, await (r.json() if r.content_type == "application/json" else r.text())


async def _get(client, path: str) -> tuple[int, object]:
    r = await client.get(path, headers=ADMIN)
    body = await (r.json() if r.content_type == "application/json" else r.text())
    if path == "/admin/simulator":
        body = body["config"]  # the state part moves with the clock
    return r.status, body


@pytest.mark.parametrize("where", ["fsync", "rename"])
@pytest.mark.parametrize("case", sorted(WRITES))
async def test_a_write_the_disk_refuses_changes_nothing(aiohttp_client, tmp_path, monkeypatch, case, where):
    method, path, make_body, get_path, what, live = WRITES[case]
    s = settings(tmp_path)
    client = await aiohttp_client(create_app(s), server_kwargs={"port": s.port})
    engine = client.app[RUNTIME]
    if make_body is None:  # the simulator: the current settings with one more agent
        config = (await _get(client, "/admin/simulator"))[1]
        config["queues"]["Callback_VQ"]["agents"] += 1
        body = config
    else:
        body = make_body()
    before_get, before_live, before_files = await _get(client, get_path), live(engine), tree(tmp_path)

    disk_fails(monkeypatch, tmp_path, where)
    status, answer = await _send(client, method, path, body)
    assert status == 503, answer
    assert answer["exception"] == "ServiceUnavailable"
    assert answer["message"] == f"could not save {what}: No space left on device"
    assert await _get(client, get_path) == before_get
    assert live(engine) == before_live
    assert tree(tmp_path) == before_files
    assert temp_files(tmp_path) == []
    if case == "new flow":
        assert "fresh" not in (await _get(client, "/admin/flows"))[1]["flows"]
    await client.close()

    # A restart loads what was there before.
    monkeypatch.undo()
    client = await aiohttp_client(create_app(settings(tmp_path)), server_kwargs={"port": s.port})
    assert await _get(client, get_path) == before_get
    # With the disk back, the same write goes through, durably.
    status, answer = await _send(client, method, path, body)
    assert status == 200, answer
    assert temp_files(tmp_path) == []
    assert tree(tmp_path) != before_files
    after = await _get(client, get_path)
    await client.close()
    client = await aiohttp_client(create_app(settings(tmp_path)), server_kwargs={"port": s.port})
    assert await _get(client, get_path) == after


async def test_a_read_only_folder_gives_its_reason(aiohttp_client, tmp_path, monkeypatch):
    s = settings(tmp_path)
    client = await aiohttp_client(create_app(s), server_kwargs={"port": s.port})
    disk_fails(monkeypatch, tmp_path, "rename", errno.EROFS)
    status, answer = await _send(client, "PUT", "/admin/services/x", {"_service": "callback"})
    assert (status, answer["message"]) == (503, "could not save service 'x': Read-only file system")
    assert (await _get(client, "/admin/services/x"))[0] == 404
    assert "x" not in (await _get(client, "/admin/services"))[1]["services"]


async def test_a_folder_that_is_a_file_is_a_503_not_a_500(aiohttp_client, tmp_path):
    """A real failure, no patching: the services folder was replaced by a file."""
    s = settings(tmp_path)
    client = await aiohttp_client(create_app(s), server_kwargs={"port": s.port})
    services = tmp_path / "config" / "services"
    shutil.rmtree(services)
    services.write_text("not a folder")
    status, answer = await _send(client, "PUT", "/admin/services/callback", {"_service": "callback", "_ttl": 5})
    assert status == 503 and answer["message"].startswith("could not save service 'callback': "), answer
    configured = (await _get(client, "/admin/services/callback"))[1]["configured"]
    assert configured == {"_service": "callback", "_max_dial_attempts": 3, "_dial_retry_timeout": 60}


async def test_saved_files_are_whole_and_private(aiohttp_client, tmp_path):
    s = settings(tmp_path)
    client = await aiohttp_client(create_app(s), server_kwargs={"port": s.port})
    status, _ = await _send(client, "PUT", "/admin/services/x", {"_service": "callback", "_ttl": 600})
    assert status == 200
    path = tmp_path / "config" / "services" / "x.json"
    assert json.loads(path.read_text()) == {"_service": "callback", "_ttl": 600}
    assert path.stat().st_mode & 0o777 == 0o600
    status, _ = await _send(client, "PUT", "/admin/flows/fresh", FLOW)
    assert status == 200 and (tmp_path / "flows" / "fresh.scxml").read_text() == FLOW
    assert client.app[RUNTIME].flows.current["fresh"].version == 1


async def test_a_simulator_change_the_simulator_refuses_leaves_the_file_alone(aiohttp_client, tmp_path):
    """Saved first, then applied: when applying is refused (a queue still in use), the saved file
    is put back, so a restart does not bring in what the live engine refused."""
    s = settings(tmp_path)
    client = await aiohttp_client(create_app(s), server_kwargs={"port": s.port})
    r = await client.post("/genesys/1/service/callback/tiny", json={"_customer_number": "+15551230000"},
                          headers={"x-api-key": "client-key"})
    assert r.status == 200, await r.text()
    await wait_state(client, (await r.json())["_id"], "QUEUED")  # it waits in Empty_VQ, which has no agents
    before = (tmp_path / "config" / "simulator.toml").read_bytes()
    config = (await _get(client, "/admin/simulator"))[1]
    del config["queues"]["Empty_VQ"]
    status, answer = await _send(client, "PUT", "/admin/simulator", config)
    assert status == 400 and "cannot remove a queue" in answer["message"], answer
    assert (tmp_path / "config" / "simulator.toml").read_bytes() == before
    assert "Empty_VQ" in (await _get(client, "/admin/simulator"))[1]["queues"]
    assert temp_files(tmp_path) == []
