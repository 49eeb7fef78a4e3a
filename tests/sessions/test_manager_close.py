"""Closing the session manager ends its storage writer even when a cancel is lost on the way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.runtime import Runtime
from engine.sessions import manager as manager_module
from engine.settings import Settings


async def test_a_writer_that_lost_a_cancel_is_cancelled_again_until_it_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager_module, "WRITER_STOP_SECONDS", 0.05)
    runtime = await Runtime.build(Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data"))
    await runtime.start()
    manager = runtime.manager
    cancels = []

    async def loses_the_first_cancel() -> None:
        # As a writer whose cancel came while its driver call completed (Python 3.11's wait_for
        # then returns the result and drops the cancel): the loop goes back to waiting.
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancels.append("lost")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancels.append("taken")
            raise

    real = manager._writer
    real.cancel()
    await asyncio.wait([real])
    manager._writer = stubborn = asyncio.create_task(loses_the_first_cancel())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(manager._stop_writer())
    done, _ = await asyncio.wait([stopping], timeout=5)  # not wait_for: its cancel would end the writer
    if not done:
        stopping.cancel()
    assert done, "the manager still waits for its writer"
    assert stubborn.cancelled() and cancels == ["lost", "taken"] and manager._writer is None
    await runtime.close()
