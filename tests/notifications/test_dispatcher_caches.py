"""What the dispatcher keeps per ordering key or target to spare work per attempt answers what
working it out afresh answers, and stays bounded."""

from __future__ import annotations

import pytest

from engine.notifications import delivery
from engine.notifications.delivery import Dispatcher, callback_of
from engine.scxml.clock import Clock

from .dispatcher_host import Host

KEYS = ["httpcb|https://r.example/h|callback/svc/c1", "httpcb|https://r.example/h|callback/svc/c2",
        "fcm|c3", "fcm|c3|x", "customhttp|https://r.example/h|news/today", "orscb|sess|callback/other/c4",
        "httpcb|https://r.example/h|callback/svc/c1"]


def test_the_callback_of_an_ordering_key_is_kept_bounded_and_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "ABOUTS_KEPT", 3)
    d = Dispatcher(Clock(), Host(), None, None)  # type: ignore[arg-type]  # no HTTP delivery here
    for _ in range(2):
        for key in KEYS:
            assert d._callback_of(key) == callback_of(key)
            assert len(d._abouts) <= 3
    held = len(d._abouts)
    assert d._callback_of("news|x|y") is None and len(d._abouts) == held + 1  # a miss is kept too
    monkeypatch.setattr(delivery, "callback_of", lambda key: pytest.fail("worked out again"))
    assert d._callback_of("news|x|y") is None
