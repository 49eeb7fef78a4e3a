"""Durable, all-or-nothing file writes for configuration and data files.

A reader (or the engine after a crash or a restart) sees either the old file or the new one,
never a mix, and a write that reported success survives a power cut: the bytes go to a temp
file in the same folder, which is fsynced, renamed over the target, and then the folder is
fsynced so the rename itself is on disk. Any failure removes the temp file and leaves the
target untouched, so the caller can keep its live state unchanged and say why.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class SaveError(Exception):
    """A file could not be made durable; the old file (if any) is still in place."""

    def __init__(self, what: str, cause: OSError):
        reason = cause.strerror or str(cause) or type(cause).__name__
        super().__init__(f"could not save {what}: {reason}")
        self.cause = cause


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably; raises ``OSError`` on failure."""
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(folder)


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new entry in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(path: Path, data: bytes, what: str, mode: int = 0o600) -> None:
    """``write_atomic`` for the admin API: a failure becomes a ``SaveError`` naming ``what``."""
    try:
        write_atomic(path, data, mode)
    except OSError as e:
        raise SaveError(what, e) from e
