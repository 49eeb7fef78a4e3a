"""Loopback ports for servers a test starts in another process (an engine, the platform, PostgreSQL).

Such a port is chosen now and bound later, by the child. A port found with ``bind(0)`` is free
only until someone else draws the same one from the kernel's ephemeral range: another pytest-xdist
worker, another test run on the machine, any outgoing connection. So each test process claims a
block of ports below that range, by an exclusive lock on the block's file (the kernel drops it
when the process ends, however it ends), and hands its ports out in turn, skipping any that
something already holds. Two processes using this module never hand out the same port, and the
kernel never gives one of them to a ``bind(0)`` or a ``connect``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import threading
from pathlib import Path

BLOCK = 400  # ports in a block: a process hands them out in turn, so one comes back after BLOCK others
FIRST = 10000  # the lowest port used: above the usual fixed ports of local services
LOCKS = Path(tempfile.gettempdir()) / "callback-engine-test-ports"


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for ``bind(0)`` and outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def bindable(port: int) -> bool:
    """Nothing on this machine holds ``port`` on loopback (listening, connected or in TIME_WAIT)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortBlock:
    """The block of ports this process owns: claimed on first use, held until the process ends."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._lock_file: int | None = None
        self._first = 0
        self._next = 0

    def _claim(self) -> None:
        low = ephemeral_range()[0]
        blocks = (low - FIRST) // BLOCK
        if blocks < 1:
            raise RuntimeError(f"no room for test ports below the ephemeral range starting at {low}")
        LOCKS.mkdir(parents=True, exist_ok=True)
        start = os.getpid() % blocks  # different processes usually find a free block at the first try
        for step in range(blocks):
            index = (start + step) % blocks
            fd = os.open(LOCKS / f"block-{index}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._lock_file, self._first = fd, FIRST + index * BLOCK
            return
        raise RuntimeError(f"all {blocks} blocks of test ports in {LOCKS} are held by other processes")

    def take(self, count: int = 1) -> int:
        """The first of ``count`` consecutive ports of this block that nothing holds now."""
        with self._mutex:
            if self._lock_file is None:
                self._claim()
            for _ in range(BLOCK):
                offset = self._next % BLOCK
                if offset + count > BLOCK:
                    self._next += BLOCK - offset
                    continue
                self._next += count
                first = self._first + offset
                if all(bindable(port) for port in range(first, first + count)):
                    return first
            raise RuntimeError(f"no {count} free consecutive ports in {self._first}-{self._first + BLOCK - 1}")


_BLOCK = PortBlock()


def free_port() -> int:
    """A loopback port for a server another process will bind: no other user of this module gets it."""
    return _BLOCK.take()


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive such ports (a row of nodes numbered from one port)."""
    return _BLOCK.take(count)
