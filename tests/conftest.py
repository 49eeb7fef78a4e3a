"""Shared test fixtures: where the W3C suites live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
W3C_PYTHON = SHARED / "scxml-w3c" / "python"


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the whole test run (started on first use)."""
    from tests.support.postgres import TempPostgres

    server = TempPostgres().start()
    yield server
    server.stop()
