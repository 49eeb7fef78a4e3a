"""What the log says about deliveries: a message that arrived is a DEBUG line (its outcome is in
the callback's history and the metrics), a failed attempt and a dead letter stay INFO and WARNING."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from tests.callbacks.conftest import create
from tests.notifications.test_delivery_history import ONE_EVENT, deliveries, svc
from tests.support.eventually import eventually

LIFECYCLE, NOTIFICATIONS = "engine.lifecycle", "engine.notifications"


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def keeping() -> Iterator[Kept]:
    """The two loggers' records, kept here only (entered in the test's body, after pytest put its
    capture handlers on the loggers: the lifecycle's INFO records carry no file name, which those
    handlers' formatter wants)."""
    handler = Kept()
    loggers = [logging.getLogger(name) for name in (LIFECYCLE, NOTIFICATIONS)]
    before = [(lg.level, lg.propagate, lg.handlers[:]) for lg in loggers]
    for lg in loggers:
        lg.handlers[:] = [handler]
        lg.propagate = False
    try:
        yield handler
    finally:
        for lg, (level, propagate, handlers) in zip(loggers, before, strict=True):
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


def _lines(kept: Kept, logger: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in kept.records if r.name == logger]


async def _delivered_after_one_retry(make_engine, receiver, level: int) -> tuple[str, Kept]:
    """A callback whose one notification fails once (500) then arrives; the lines logged meanwhile."""
    with keeping() as kept:
        logging.getLogger(LIFECYCLE).setLevel(level)
        logging.getLogger(NOTIFICATIONS).setLevel(logging.INFO)
        receiver.answers = [(500, {})]
        client = await make_engine({"logged": svc(receiver)}, lists=ONE_EVENT)
        cid = await create(client, "logged", _customer_number="+15550800201")
        await receiver.wait_for(1, timeout=20)
        await eventually(lambda: deliveries(client, cid),
                         lambda got: len(got) == 1 and got[0]["status"] == "delivered", timeout=10,
                         expected="the delivery delivered in the history")
    return cid, kept


async def test_an_arrived_message_has_no_info_line_but_its_failed_attempt_does(make_engine, receiver) -> None:
    _cid, kept = await _delivered_after_one_retry(make_engine, receiver, logging.INFO)
    said = _lines(kept, LIFECYCLE)
    assert ("callback created" in [m for _, m in said]), said  # the lifecycle lines are on
    assert not [m for _, m in said if m in ("delivery delivered", "push sent")], said
    failed = [(lvl, m) for lvl, m in _lines(kept, NOTIFICATIONS) if "failed (HTTP 500); attempt 2" in m]
    assert [lvl for lvl, _ in failed] == [logging.INFO], _lines(kept, NOTIFICATIONS)


async def test_at_debug_an_arrived_message_is_logged_with_its_fields(make_engine, receiver) -> None:
    cid, kept = await _delivered_after_one_retry(make_engine, receiver, logging.DEBUG)
    [line] = [r for r in kept.records if r.name == LIFECYCLE and r.getMessage() == "delivery delivered"]
    assert line.levelno == logging.DEBUG
    assert (line.callback_id, line.type, line.service, line.event) == (cid, "httpcb", "logged",
                                                                       "_cbe_on_service_create")
    assert isinstance(line.delivery_id, int)
