"""Random ids: 32 hex digits, never repeated, and a forked child does not reuse its parent's."""

from __future__ import annotations

import os
import re

from engine.ids import random_id


def test_ids_are_128_bit_hex_and_unique() -> None:
    ids = [random_id() for _ in range(5000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_fresh_ids() -> None:
    random_id()  # the pool now holds ids the parent will hand out next
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, random_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert child != random_id()
