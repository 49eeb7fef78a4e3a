"""A real engine process for tests: started, health-checked, killed with SIGKILL or stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from aiohttp import ClientSession

from tests.conftest import REPO
from tests.support.eventually import eventually
from tests.support.ports import free_port

ADMIN_KEY = "test-admin-key"
CLIENT_KEY = "test-client-key"
DEVELOPER_KEY = "test-developer-key"

__all__ = ["ADMIN_KEY", "CLIENT_KEY", "DEVELOPER_KEY", "EngineProcess", "free_port", "shipped_engine"]


class EngineProcess:
    def __init__(self, data_dir: Path, flows_dir: Path, port: int | None = None, **settings: str):
        self.data_dir = data_dir
        self.flows_dir = flows_dir
        self.port = port or free_port()
        self.settings = settings
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "engine.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> None:
        env = dict(os.environ)
        env.update({
            "CALLBACK_ENGINE_ADMIN_KEY": ADMIN_KEY,
            "CALLBACK_ENGINE_CLIENT_KEY": CLIENT_KEY,
            "CALLBACK_ENGINE_DEVELOPER_KEY": DEVELOPER_KEY,
            "CALLBACK_ENGINE_FLOWS_DIR": str(self.flows_dir),
            **{f"CALLBACK_ENGINE_{k.upper()}": str(v) for k, v in self.settings.items()},
        })
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Private from the start, like every file of the data folder (the engine warns of and
        # fixes one readable by others, which each bench then counted as an alarm in its log).
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "run_engine.py"), "serve", "--data", str(self.data_dir),
             "--port", str(self.port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        async with ClientSession() as client:

            async def health() -> int:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"engine exited with {self.proc.returncode}:\n{self.log()}")
                async with client.get(self.url + "/health") as r:
                    return r.status

            await eventually(health, lambda status: status == 200, timeout=timeout, interval=0.05,
                             ignoring=(OSError,), expected="the engine up",
                             seen=lambda last: f"{last!r}; log:\n{self.log()}")

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM: the graceful path."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-5000:]
        except OSError:
            return ""


def shipped_engine(root: Path) -> EngineProcess:
    """An engine process with the shipped configuration and flows copied under ``root``, whose
    outbound calls (notifications, FCM) can only reach a closed loopback port: for tests that
    throw arbitrary requests at it (fuzzing), so nothing it is made to call leaves the machine."""
    config = root / "config"
    shutil.copytree(REPO / "config", config)
    closed = f"http://127.0.0.1:{free_port()}"
    (config / "notifications.json").write_text(json.dumps({"allowed_targets": [closed]}))
    flows = root / "flows"
    shutil.copytree(REPO / "scxml", flows)
    return EngineProcess(root / "data", flows, config_dir=str(config), fcm_base_url=closed,
                         fcm_token_uri=closed + "/token", log_level="WARNING")
