"""Shared test fixtures: where the W3C suites live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
W3C_PYTHON = SHARED / "scxml-w3c" / "python"


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
