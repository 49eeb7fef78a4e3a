"""Review: BatchFlushingHandler._flush_soon no longer asks asyncio for the running loop, which
on Python 3.11 is how a forked child learns it runs no loop. A child forked while a flush is due
on the parent's loop sees that loop as "running" in the same thread id, so its INFO lines are
held for a flush that never runs in the child (lost when it ends with os._exit, as a
multiprocessing fork child does). Before, they were flushed at once (no running loop)."""

from __future__ import annotations

import asyncio
import io
import logging
import os

import pytest

from engine.logs import BatchFlushingHandler


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_childs_info_lines_are_written(tmp_path) -> None:
    path = tmp_path / "engine.log"
    log = logging.getLogger("engine.review_fork")
    log.propagate = False
    log.setLevel(logging.INFO)
    with open(path, "w", buffering=1 << 16) as stream:
        handler = BatchFlushingHandler(stream)
        log.addHandler(handler)
        try:
            async def fork_while_a_flush_is_due() -> None:
                log.info("parent first")  # the first of a stretch: flushed at once
                log.info("parent second")  # a flush due on this loop
                pid = os.fork()
                if pid == 0:  # the child: what a multiprocessing worker forked here would do
                    try:
                        log.info("child line")
                    finally:
                        os._exit(0)
                os.waitpid(pid, 0)

            asyncio.run(fork_while_a_flush_is_due())
        finally:
            log.removeHandler(handler)
            handler.close()
            handler.stream = io.StringIO()  # the file closes: logging's exit-time flush finds this
    assert "child line" in path.read_text()
