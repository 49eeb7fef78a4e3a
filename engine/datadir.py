"""The data folder: private to its owner and used by one engine at a time.

Two engines on one folder would restore the same sessions and fire every timer twice, so the
engine takes an exclusive ``flock`` on ``engine.lock`` for its whole life. The kernel releases
it when the process ends however it ends (even ``kill -9``), so a stale lock cannot block a
restart; the pid written into the file only serves to name the holder in the refusal.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("engine")
LOCK_NAME = "engine.lock"


class DataFolderBusy(Exception):
    """Another process holds the data folder."""

    def __init__(self, folder: Path, pid: str):
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"data folder {folder} is in use by {holder} (another engine); "
                         f"stop it or use another --data folder")
        self.pid = pid


class DataFolderLock:
    """Held from ``acquire`` until the process exits (or ``release``)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``DataFolderBusy`` naming the holder's pid."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by child processes
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise DataFolderBusy(self.folder, holder) from None
        except OSError:
            os.close(fd)
            raise
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def make_private(folder: Path) -> None:
    """Files the engine finds in its data folder readable by others (an older engine, a copy)
    are made 0600; new ones are created so by the umask the engine runs with."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return
    for path in entries:
        try:
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
                os.chmod(path, 0o600)
                log.warning("%s was readable by others; now 0600", path)
        except OSError as e:
            log.warning("cannot make %s private: %s", path, e)
