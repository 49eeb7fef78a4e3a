"""Issue 9 items 11 and 10 (files): one engine per data folder, the port bound before storage is
opened, and everything in the data folder private. Real engine processes throughout."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import ClientSession

from tests.conftest import REPO
from tests.support.engine_process import ADMIN_KEY, CLIENT_KEY, DEVELOPER_KEY, EngineProcess, free_port
from tests.support.eventually import eventually

KEYS_ENV = {"CALLBACK_ENGINE_ADMIN_KEY": ADMIN_KEY, "CALLBACK_ENGINE_CLIENT_KEY": CLIENT_KEY,
            "CALLBACK_ENGINE_DEVELOPER_KEY": DEVELOPER_KEY}


def flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    folder.mkdir(exist_ok=True)
    (folder / "hello.scxml").write_bytes((REPO / "scxml" / "hello.scxml").read_bytes())
    return folder


def second_engine(data_dir: Path, port: int, flows_dir: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, **KEYS_ENV, "CALLBACK_ENGINE_FLOWS_DIR": str(flows_dir)}
    return subprocess.run([sys.executable, str(REPO / "run_engine.py"), "serve", "--data", str(data_dir),
                           "--port", str(port)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


async def healthy(url: str) -> bool:
    async with ClientSession() as client, client.get(url + "/health") as r:
        return r.status == 200


async def test_a_second_engine_on_the_same_data_folder_refuses(tmp_path: Path) -> None:
    first = EngineProcess(tmp_path / "data", flows(tmp_path))
    first.log_path = tmp_path / "first.log"
    await first.start()
    try:
        lock = tmp_path / "data" / "engine.lock"
        assert lock.read_text().strip() == str(first.proc.pid)
        for port in (free_port(), first.port):  # another port, and the same one
            started = time.monotonic()
            result = await asyncio.to_thread(second_engine, tmp_path / "data", port, tmp_path / "flows")
            assert result.returncode != 0, result
            assert time.monotonic() - started < 20
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert f"in use by process {first.proc.pid}" in lines[0] and str(tmp_path / "data") in lines[0]
            assert "Traceback" not in result.stdout + result.stderr
        assert await healthy(first.url)
    finally:
        assert first.stop() == 0
    # The lock dies with its holder, even after kill -9: the next engine starts.
    again = EngineProcess(tmp_path / "data", tmp_path / "flows")
    again.log_path = tmp_path / "again.log"
    await again.start()
    again.kill()
    third = EngineProcess(tmp_path / "data", tmp_path / "flows")
    third.log_path = tmp_path / "third.log"
    await third.start()
    assert (tmp_path / "data" / "engine.lock").read_text().strip() == str(third.proc.pid)
    assert third.stop() == 0


async def test_a_busy_port_fails_fast_without_opening_storage(tmp_path: Path) -> None:
    first = EngineProcess(tmp_path / "data", flows(tmp_path))
    first.log_path = tmp_path / "first.log"
    await first.start()
    try:
        other = tmp_path / "other-data"
        result = await asyncio.to_thread(second_engine, other, first.port, tmp_path / "flows")
        assert result.returncode != 0, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{first.port}" in lines[0], result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert not (other / "engine.db").exists()
        assert sorted(p.name for p in other.iterdir()) == ["engine.lock"]
        assert await healthy(first.url)
    finally:
        assert first.stop() == 0


async def test_every_file_in_the_data_folder_is_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"  # the engine creates it
    engine = EngineProcess(data, flows(tmp_path))
    engine.log_path = tmp_path / "engine.log"
    engine.data_dir = tmp_path / "unused"  # the harness would create the folder itself
    env = {**os.environ, **KEYS_ENV, "CALLBACK_ENGINE_FLOWS_DIR": str(tmp_path / "flows")}
    env.pop("CALLBACK_ENGINE_SECRET_KEY", None)
    with open(engine.log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(REPO / "run_engine.py"), "serve", "--data", str(data),
                                 "--port", str(engine.port)], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:

        async def up() -> bool:
            assert proc.poll() is None, engine.log_path.read_text()
            return await healthy(engine.url)

        await eventually(up, timeout=30, interval=0.05, ignoring=(OSError,), expected="healthy",
                         seen=lambda last: f"{last!r}; log:\n{engine.log_path.read_text()}")
        async with ClientSession(headers={"x-api-key": CLIENT_KEY}) as client:
            for _ in range(5):  # something to write: the WAL and its index exist while the engine runs
                async with client.post(engine.url + "/scxml/session/start", data={"src": "hello"}) as r:
                    assert r.status == 200, await r.text()
        names = {p.name for p in data.iterdir()}
        assert {"engine.db", "engine.db-wal", "engine.db-shm", "engine.lock", "secret.key"} <= names, names
        check_private(data)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    check_private(data)


async def test_files_found_readable_by_others_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    stray = data / "left-over.json"
    stray.write_text("{}")
    stray.chmod(0o644)
    engine = EngineProcess(data, flows(tmp_path))
    engine.log_path = tmp_path / "engine.log"
    await engine.start()
    try:
        assert stat.S_IMODE(stray.stat().st_mode) == 0o600
        check_private(data, folder_mode=None)
    finally:
        assert engine.stop() == 0


def check_private(data: Path, folder_mode: int | None = 0o700) -> None:
    if folder_mode is not None:
        assert stat.S_IMODE(data.stat().st_mode) == folder_mode
    for path in data.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {mode:o}"
