"""Webhook message ids: drawn from the OS in blocks, still 128 random bits each and never repeated."""

from __future__ import annotations

import os
import re

from engine.notifications import webhooks
from engine.notifications.webhooks import message_id


def test_ids_have_the_format_and_do_not_repeat_across_blocks() -> None:
    ids = [message_id("msg") for _ in range(3 * webhooks._RANDOM_BLOCK // 16 + 7)]
    assert all(re.fullmatch(r"msg_[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert re.fullmatch(r"orscb_[0-9a-f]{32}", message_id("orscb"))


def test_a_forked_child_does_not_reuse_the_parents_block() -> None:
    message_id("msg")  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write, message_id("msg").encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert child != message_id("msg")
