"""The platform process (``run_engine.py platform``) for tests: started, paused, killed, restarted."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from engine.platform.auth import sign
from tests.conftest import REPO
from tests.support.engine_process import free_port
from tests.support.eventually import eventually


class PlatformProcess:
    """``key``: the platform_key of this run (generated; the nodes started against it get it too)."""

    def __init__(self, config_dir: Path, log_path: Path, port: int | None = None, key: str | None = None):
        self.config_dir = config_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.key = key or secrets.token_urlsafe(24)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20.0) -> None:
        log = open(self.log_path, "a")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "run_engine.py"), "platform", "--config", str(self.config_dir),
             "--port", str(self.port)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "CALLBACK_ENGINE_PLATFORM_KEY": self.key})
        log.close()
        async with ClientSession() as client:

            async def health() -> int:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"platform exited with {self.proc.returncode}:\n{self.log()}")
                async with client.get(self.url + "/health") as r:
                    return r.status

            await eventually(health, lambda status: status == 200, timeout=timeout, interval=0.05,
                             ignoring=(OSError,), expected="the platform up",
                             seen=lambda last: f"{last!r}; log:\n{self.log()}")

    def signed(self, method: str, path: str) -> dict[str, str]:
        """Headers of a request this platform accepts (signed with its key, as a node signs)."""
        return {"Authorization": sign(self.key, method, path)[0]}

    async def stats(self) -> dict[str, Any]:
        async with ClientSession() as client, \
                client.get(self.url + "/platform/stats", headers=self.signed("GET", "/platform/stats")) as r:
            assert r.status == 200
            return await r.json()

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is read or answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """kill -9: the queues, agents and calls are gone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-5000:]
        except OSError:
            return ""
