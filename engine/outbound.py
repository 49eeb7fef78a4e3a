"""The outbound port: how a part hands a message to the durable delivery outbox, and how a
sender reports that an attempt failed.

The outbox itself (stored rows, ordering per key, retries with backoff, dead letters) is the
notification service's (``engine.notifications.delivery``). Push enqueues its FCM messages and
carries them out through this port alone, so ``engine.push`` needs nothing of
``engine.notifications`` and the two can be built side by side on top of the callback service.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

MAX_RETRY_AFTER = 3600.0


class DeliveryFailure(Exception):
    """One attempt failed. ``retry``: whether another attempt can succeed; ``retry_after``: the
    receiver's wish (seconds), honoured up to the outbox's cap."""

    def __init__(self, reason: str, retry: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.retry = retry
        self.retry_after = retry_after


class OutboundMessage(Protocol):
    """What a sender is given: the delivery as stored."""

    id: int
    target: str
    message: dict[str, Any]


Sender = Callable[[Any], Awaitable[None]]
"""``await sender(delivery)``: one attempt; raises ``DeliveryFailure`` when it did not arrive.
(Typed ``Any``: the outbox passes its own delivery type, which satisfies ``OutboundMessage``.)"""


class Outbox(Protocol):
    """Durable, ordered, retried delivery of messages of a kind carried by a registered sender."""

    def enqueue(self, kind: str, key: str, target: str, message: dict[str, Any]) -> None:
        """Store ``message`` with the change being made now; attempt it once that is committed.
        Messages sharing ``key`` are delivered one after the other, in order."""
        ...

    def add_sender(self, kind: str, sender: Sender) -> None:
        """Carry out every delivery of ``kind`` with ``sender``."""
        ...


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date), capped at an hour."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER))
