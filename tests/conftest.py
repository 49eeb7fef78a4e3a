"""Shared test fixtures: where the W3C suites live."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
W3C_PYTHON = SHARED / "scxml-w3c" / "python"
