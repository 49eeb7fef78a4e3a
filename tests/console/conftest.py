"""Fixtures of the console tests.

- ``engine``: one real engine process for the whole run (the shipped configuration and flows,
  outbound calls confined to a closed loopback port, the simulator ``TIME_SCALE`` times faster so
  a callback completes in seconds), with a key per role in ``engine.keys``.
- ``browser``: a fresh headless Chromium (1366x900, its own profile) per test; see
  ``tests/support/browser.py`` for ``sign_in``, ``shot``, ``wait_for``.
- ``console_client``: an in-process engine behind pytest-aiohttp's client, for the HTTP-level
  tests; ``await console_client(**settings)``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from selenium.webdriver.remote.webdriver import WebDriver

from engine.app import create_app
from engine.roles import ADMINISTRATOR, CLIENT, DEVELOPER, MONITOR, SUPERVISOR
from tests.api.conftest import make_settings
from tests.support.browser import browser_log, start_browser
from tests.support.engine_process import ADMIN_KEY, CLIENT_KEY, DEVELOPER_KEY, EngineProcess, free_port, shipped_engine

TIME_SCALE = 20  # the engine clock runs this much faster: a callback's 3.5 minutes take about ten seconds


@dataclass
class ConsoleEngine:
    """The engine the browser tests use: its address and a key (secret) per role."""

    process: EngineProcess
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return self.process.url

    def api(self, method: str, path: str, role: str = ADMINISTRATOR, **kw) -> requests.Response:
        """A plain API call with the role's key (to set a test up or check what the page did)."""
        headers = {"x-api-key": self.keys[role], **kw.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kw)


@pytest.fixture(scope="session")
def engine(tmp_path_factory) -> Iterator[ConsoleEngine]:
    root = tmp_path_factory.mktemp("console")
    process = shipped_engine(root)
    simulator = root / "config" / "simulator.toml"
    simulator.write_text(re.sub(r"(?m)^time_scale = .*$", f"time_scale = {TIME_SCALE}.0", simulator.read_text()))
    asyncio.run(process.start())
    try:
        keys = {ADMINISTRATOR: ADMIN_KEY, CLIENT: CLIENT_KEY, DEVELOPER: DEVELOPER_KEY}
        engine = ConsoleEngine(process, keys)
        for role in (SUPERVISOR, MONITOR):
            made = engine.api("POST", "/admin/keys", json={"name": f"console-{role}", "role": role})
            assert made.status_code == 201, made.text
            keys[role] = made.json()["key"]
        yield engine
    finally:
        process.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    driver = start_browser(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        browser_log(driver)  # drained: a failing test printed what it needed already
        driver.quit()


@pytest.fixture
async def console_client(aiohttp_client, tmp_path):
    async def make(**settings):
        port = free_port()
        app = create_app(make_settings(tmp_path, port=port, **settings))
        return await aiohttp_client(app, server_kwargs={"port": port})

    return make
