"""Group commit: while the engine is busy (a batch held the snapshots of at least
``BUSY_BATCH_SESSIONS`` sessions), the next batch waits until ``commit_window_seconds`` after the
one before, so the changes made meanwhile share it; a lone change after a quiet batch is written
at once; and the window is a checked setting."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from engine.runtime import Runtime
from engine.scxml import Session
from engine.sessions import rows as session_rows
from engine.sessions.manager import BUSY_BATCH_SESSIONS
from engine.settings import Settings
from engine.storage import StorageUnavailable

WAITING = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="s">
<state id="s"><transition event="go" target="end"/></state><final id="end"/></scxml>"""


def settings(tmp_path: Path, window: float) -> Settings:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "waiting.scxml").write_text(WAITING)
    return Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data", flows_dir=flows,
                         flow_watch_interval=0, commit_window_seconds=window)


async def started(tmp_path: Path, window: float) -> tuple[Runtime, list[int]]:
    """A running engine, and the number of session snapshots of each batch it writes from now."""
    engine = await Runtime.build(settings(tmp_path, window))
    await engine.start()
    sizes: list[int] = []
    engine.manager.on_commit.append(lambda batch, _s: sizes.append(len(batch.upserts.get(session_rows.SESSIONS, ()))))
    return engine, sizes


async def two_after_a_busy_batch(engine: Runtime, sizes: list[int]) -> list[Session]:
    """A batch of ``BUSY_BATCH_SESSIONS`` new sessions, then two more 50 ms apart, committed."""
    manager = engine.manager
    for _ in range(BUSY_BATCH_SESSIONS):
        manager.start_flow("waiting")
    await manager.commit()
    assert sizes[-1] >= BUSY_BATCH_SESSIONS, sizes
    sizes.clear()
    first = manager.start_flow("waiting")
    await asyncio.sleep(0.05)  # with a window, the writer waits it out meanwhile
    second = manager.start_flow("waiting")
    await manager.commit()
    return [first, second]


async def test_changes_made_while_busy_share_the_next_batch(tmp_path: Path) -> None:
    engine, sizes = await started(tmp_path, window=1.0)  # far longer than the 50 ms between the two
    try:
        manager = engine.manager
        first, second = await two_after_a_busy_batch(engine, sizes)
        assert sizes == [2], f"one batch for both, not {sizes}"
        for session in (first, second):
            assert (await session_rows.get_session(manager.store, session.id))["status"] == "running"
    finally:
        await engine.close()


async def test_a_lone_change_after_a_quiet_batch_is_written_at_once(tmp_path: Path) -> None:
    # A window far longer than the wait allowed below: a commit that waited it could not pass.
    engine, sizes = await started(tmp_path, window=1.0)
    try:
        manager = engine.manager
        for _ in range(3):
            began = time.monotonic()
            manager.start_flow("waiting")
            await manager.commit()
            assert time.monotonic() - began < 0.9, "a change of one session waited out the window"
        assert sizes[-3:] == [1, 1, 1], sizes
    finally:
        await engine.close()


async def test_without_a_window_a_busy_engine_writes_at_once(tmp_path: Path) -> None:
    engine, sizes = await started(tmp_path, window=0)
    try:
        await two_after_a_busy_batch(engine, sizes)
        assert sizes == [1, 1], sizes
    finally:
        await engine.close()


@pytest.mark.parametrize("window", [-0.01, 1.5, float("nan")])
def test_the_window_is_checked(tmp_path: Path, window: float) -> None:
    with pytest.raises(ValueError, match="commit_window_seconds must be between 0 and 1"):
        settings(tmp_path, window)


def test_the_window_is_shorter_than_the_wait_for_durability(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="less than durability_timeout and ready_max_backlog_age"):
        Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data", commit_window_seconds=0.5,
                      durability_timeout=0.5)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_the_wait_for_durability_is_a_positive_number_of_seconds(tmp_path: Path, timeout: float) -> None:
    """NaN would give every wait for a commit no limit at all (its deadline never comes)."""
    with pytest.raises(ValueError, match="durability_timeout must be a positive number of seconds"):
        Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data", durability_timeout=timeout)


@pytest.mark.parametrize("scale", [1, 1000])
async def test_a_commit_not_stored_in_time_fails_after_the_limit_in_real_seconds(tmp_path: Path, scale: int) -> None:
    """The wait's timer is the engine clock's; with the simulator's time running a thousand times
    faster, ``durability_timeout`` is still seconds of real time."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "simulator.toml").write_text(f"time_scale = {scale}\n")
    engine = await Runtime.build(Settings.load(config_dir=config, env={}, data_dir=tmp_path / "data",
                                               durability_timeout=0.3))
    await engine.start()
    manager = engine.manager
    real_write = manager.store.write

    async def stuck(unit: object) -> None:
        await asyncio.sleep(30)

    try:
        assert engine.clock.scale == scale
        manager.store.write = stuck  # type: ignore[method-assign]
        manager.start_flow("hello")
        began = time.monotonic()
        with pytest.raises(StorageUnavailable, match=r"not stored within 0\.3 s"):
            await manager.commit()
        assert 0.25 <= time.monotonic() - began < 3
    finally:
        manager.store.write = real_write  # type: ignore[method-assign]
        await engine.close()
