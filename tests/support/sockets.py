"""Which TCP connections a process holds, read from /proc: to tell which engine process sent a
request to a receiver on loopback, where every sender's address is 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path


def socket_inodes(pid: int) -> set[str]:
    found: set[str] = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(target[8:-1])
    except OSError:
        pass
    return found


def local_ports_to(pid: int, remote_port: int) -> set[int]:
    """The local ports of ``pid``'s IPv4 connections to ``remote_port``."""
    inodes = socket_inodes(pid)
    ports: set[int] = set()
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return ports
    for line in lines:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if inode in inodes and int(remote.split(":")[1], 16) == remote_port:
            ports.add(int(local.split(":")[1], 16))
    return ports
