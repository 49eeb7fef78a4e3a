"""A watchdog for tests that hang: past a generous bound, the stacks of every thread and of every
pending asyncio task are written out, so a hang can be diagnosed from the CI log or the file it
leaves. It changes no outcome: the test goes on as it would have (a hang stays a hang, and is
still ended by CI's time limit, but no longer blind).

One daemon thread serves the whole run; a test only stores its deadline (``arm``) and clears it
(``disarm``), so the cost per test is a lock and a notify.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO


class Watchdog:
    def __init__(self, seconds: float, folder: Callable[[], Path], stream: IO[str] | None = None):
        self.seconds = seconds
        self.folder = folder  # asked when a dump is written
        self.stream = stream  # where the stacks also go (the worker's real stderr), or None
        self.dumps: list[Path] = []
        self._lock = threading.Condition()
        self._test: str | None = None
        self._deadline = 0.0
        self._stopped = False
        self._thread = threading.Thread(target=self._watch, name="test-watchdog", daemon=True)
        self._thread.start()

    def arm(self, test: str) -> None:
        with self._lock:
            self._test, self._deadline = test, time.monotonic() + self.seconds
            self._lock.notify()

    def disarm(self) -> None:
        with self._lock:
            self._test = None

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()
        self._thread.join(5)

    def _watch(self) -> None:
        with self._lock:
            while not self._stopped:
                if self._test is None:
                    self._lock.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                test, self._test = self._test, None  # once per test
                self._lock.release()
                try:
                    self.dump(test)
                finally:
                    self._lock.acquire()

    def dump(self, test: str) -> Path:
        """Write every thread's and every pending task's stack to a file (and ``stream``)."""
        folder = self.folder()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"hang-{os.getpid()}-{len(self.dumps)}.txt"
        header = f"WATCHDOG: {test} still running after {self.seconds:g} s (pid {os.getpid()}); stacks follow\n"
        with path.open("w") as f:
            _write_stacks(f, header)
        if self.stream is not None:
            try:
                _write_stacks(self.stream, header)
                self.stream.write(f"WATCHDOG: the same in {path}\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self.dumps.append(path)  # once written everywhere
        return path


def _write_stacks(f: IO[str], header: str) -> None:
    f.write(header)
    f.write("--- threads ---\n")
    f.flush()
    try:
        faulthandler.dump_traceback(file=f, all_threads=True)
    except (OSError, ValueError):  # a stream without a file descriptor
        for ident, frame in sys._current_frames().items():
            f.write(f"thread {ident}:\n{''.join(traceback.format_stack(frame))}")
    f.write("--- pending asyncio tasks ---\n")
    for task in pending_tasks():
        f.write(f"{task!r}\n")
        try:
            task.print_stack(file=f)
        except Exception as e:  # the loop thread may move on while this one reads
            f.write(f"  (stack unreadable: {type(e).__name__}: {e})\n")
    f.write("--- end of watchdog dump ---\n")
    f.flush()


def pending_tasks() -> list[asyncio.Task]:
    """The tasks not done, of every loop, read from another thread than the loops' own."""
    for _ in range(5):
        try:
            registry = getattr(asyncio.tasks, "_all_tasks", None)  # Python 3.11's weak set of tasks
            found = list(registry) if registry is not None else [
                o for o in gc.get_objects() if isinstance(o, asyncio.Task)]
            return [t for t in found if not t.done()]
        except RuntimeError:  # the set changed size while it was read: read it again
            continue
    return []


def real_stderr(config: object) -> IO[str] | None:
    """The worker's stderr as it was before pytest captured it (a test's own stderr is captured
    to a temporary file that a hung test never shows)."""
    plugins = getattr(config, "pluginmanager", None)
    capman = plugins.getplugin("capturemanager") if plugins is not None else None
    capturing = getattr(capman, "_global_capturing", None)
    err = getattr(capturing, "err", None)
    fd = getattr(err, "targetfd_save", None)
    if isinstance(fd, int):
        try:
            return os.fdopen(os.dup(fd), "w", buffering=1)
        except OSError:
            return None
    return sys.__stderr__
