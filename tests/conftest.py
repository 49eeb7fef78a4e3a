"""Shared test fixtures: where the W3C suites live."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.support.watchdog import Watchdog, real_stderr

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
W3C_PYTHON = SHARED / "scxml-w3c" / "python"
WATCHDOG = pytest.StashKey[Watchdog]()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the whole test run (started on first use). Under pytest-xdist each
    worker is a run of its own, so each starts its own server, in its own folder, on a port of its
    own block (``tests/support/ports.py``): workers share no database, socket or file."""
    from tests.support.ports import free_port
    from tests.support.postgres import TempPostgres

    server = TempPostgres()
    server.port = free_port()  # not the kernel's bind(0) port, which another worker could draw too
    server.start()
    yield server
    server.stop()


# -- a watchdog for hung tests (tests/support/watchdog.py) -----------------------------------------
WATCHDOG_SECONDS = float(os.environ.get("TEST_WATCHDOG_SECONDS", "120"))


def pytest_configure(config: pytest.Config) -> None:
    def folder() -> Path:  # the worker's own temporary folder
        factory = getattr(config, "_tmp_path_factory", None)
        return (factory.getbasetemp() if factory is not None else Path(tempfile.gettempdir())) / "watchdog"

    config.stash[WATCHDOG] = Watchdog(WATCHDOG_SECONDS, folder, real_stderr(config))


def pytest_unconfigure(config: pytest.Config) -> None:
    watchdog = config.stash.get(WATCHDOG, None)
    if watchdog is not None:
        watchdog.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Setup, call and teardown (the event loop's close included) under the watchdog: past
    ``TEST_WATCHDOG_SECONDS`` every thread's and pending task's stack is written out. Nothing
    else changes: the test's outcome is its own."""
    watchdog = item.config.stash.get(WATCHDOG, None)
    if watchdog is not None:
        watchdog.arm(item.nodeid)
    try:
        yield
    finally:
        if watchdog is not None:
            watchdog.disarm()
