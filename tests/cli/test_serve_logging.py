"""``run_engine.py -v`` with no command serves, logging at DEBUG (it used to stop with a
traceback: no command was chosen); JSON logging is covered in tests/observability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from aiohttp import ClientSession

from tests.conftest import REPO
from tests.support.engine_process import free_port
from tests.support.eventually import eventually


async def test_verbose_without_a_command_serves_at_debug_level(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CALLBACK_ENGINE_DATA_DIR": str(tmp_path / "data"), "CALLBACK_ENGINE_PORT": str(port),
           "CALLBACK_ENGINE_ADMIN_KEY": "verbose-admin-key"}
    log = tmp_path / "engine.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "run_engine.py"), "-v"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        async with ClientSession() as http:
            async def health() -> int:
                assert proc.poll() is None, log.read_text()
                async with http.get(f"http://127.0.0.1:{port}/health") as r:
                    return r.status

            await eventually(health, lambda status: status == 200, timeout=30, ignoring=(OSError,),
                             expected="the engine up")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    text = log.read_text()
    assert f"callback engine on http://127.0.0.1:{port}" in text
    assert " DEBUG " in text, text  # asyncio's own start-up line, among others
    assert "verbose-admin-key" not in text
