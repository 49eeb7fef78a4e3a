"""Every automatic W3C SCXML test (python datamodel), mandatory and optional, must pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.scxml.runner import run_to_completion
from tests.scxml.w3c_suite import ERRATA, load, require_suite, start_files

require_suite()

MANDATORY = start_files("mandatory")
OPTIONAL = start_files("optional")


def test_suite_is_complete() -> None:
    # 159 converted mandatory start files plus test288 added by hand; 33 optional ones.
    assert len(MANDATORY) == 160
    assert len(OPTIONAL) == 33


async def _check(path: Path) -> None:
    doc = load(path)
    outcome = await run_to_completion(doc, timeout=20.0)
    assert outcome.passed, (
        f"{path.name}: status={outcome.status} final={outcome.final_state} "
        f"configuration={outcome.configuration} error={outcome.error}"
    )


@pytest.mark.parametrize("path", MANDATORY, ids=lambda p: p.stem)
async def test_mandatory(path: Path) -> None:
    await _check(path)


@pytest.mark.parametrize("path", OPTIONAL, ids=lambda p: p.stem)
async def test_optional(path: Path) -> None:
    await _check(path)


def test_errata_are_few_and_explained() -> None:
    assert set(ERRATA) == {"test201.scxml", "test352.scxml", "test509.scxml", "test525.scxml"}
    assert all(len(reason) > 40 for reason, _ in ERRATA.values())
