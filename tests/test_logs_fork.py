"""A child forked while a flush is due on the parent's loop runs no loop, though that loop looks
running in the same thread: its INFO lines are flushed at once, as lines outside a loop are, not
held for a flush that never runs in the child (lost when it ends with os._exit, as a
multiprocessing fork child does)."""

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
    log = logging.getLogger("engine.test_logs_fork")
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
