"""Subscriptions of the notification API (SPEC 6): who receives messages published under a tag.

A filter is matched against the tag with shell-style wildcards (``callback/samples/*``). Status
events are published under ``callback/<service>/<callback id>``.
"""

from __future__ import annotations

import fnmatch
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from ..callbacks.records import BadRequest

TYPES = ("httpcb", "customhttp", "orscb", "fcm")
MIN_EXPIRE = 30


def callback_tag(service: str, callback_id: str) -> str:
    return f"callback/{service}/{callback_id}"


@dataclass
class Subscription:
    id: str
    subscriber_id: str
    provider: str
    type: str
    device_id: str
    properties: dict[str, Any]
    filter: str
    expires_at: float
    created_at: float
    callback_id: str | None = None
    max_attempts: int | None = None

    @property
    def target(self) -> str:
        """The URL (httpcb, customhttp) or session id (orscb) deliveries go to."""
        return str(self.properties.get("url") or self.device_id)

    @property
    def secret(self) -> str | None:
        value = self.properties.get("secret")
        return str(value) if value else None

    def matches(self, tag: str, now: float) -> bool:
        return now < self.expires_at and fnmatch.fnmatchcase(tag, self.filter)

    def public(self) -> dict[str, Any]:
        props = {k: ("***" if k == "secret" else v) for k, v in self.properties.items()}
        return {"id": self.id, "subscriberId": self.subscriber_id, "providerName": self.provider,
                "notificationDetails": {"deviceId": self.device_id, "type": self.type, "properties": props},
                "filter": self.filter, "expires": self.expires_at}

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "record": json.dumps(asdict(self)), "expires_at": self.expires_at}


@dataclass
class SubscriptionRegistry:
    """Live subscriptions; changes reach storage through the session manager's batches."""

    items: dict[str, Subscription] = field(default_factory=dict)
    changed: dict[str, Subscription] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def load(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            sub = Subscription(**json.loads(row["record"]))
            self.items[sub.id] = sub

    def add(self, sub: Subscription) -> Subscription:
        self.items[sub.id] = sub
        self.changed[sub.id] = sub
        return sub

    def remove(self, sub_id: str) -> Subscription | None:
        sub = self.items.pop(sub_id, None)
        if sub is not None:
            self.changed.pop(sub_id, None)
            self.removed.append(sub_id)
        return sub

    def matching(self, tag: str, now: float) -> list[Subscription]:
        expired = [s.id for s in self.items.values() if s.expires_at <= now]
        for sub_id in expired:
            self.remove(sub_id)
        return [s for s in self.items.values() if s.matches(tag, now)]

    def for_callback(self, callback_id: str) -> list[Subscription]:
        return [s for s in self.items.values() if s.callback_id == callback_id]


def parse_request(body: dict[str, Any], now: float, allowed: list[str]) -> Subscription:
    """A subscription from the API body; ``BadRequest`` says what is wrong."""
    details = body.get("notificationDetails")
    if not isinstance(details, dict):
        raise BadRequest("notificationDetails (an object with deviceId, type, properties) is required")
    kind = details.get("type")
    if kind not in TYPES:
        raise BadRequest(f"notificationDetails.type must be one of {', '.join(TYPES)}, not {kind!r}")
    device = details.get("deviceId")
    if not isinstance(device, str) or not device:
        raise BadRequest("notificationDetails.deviceId is required")
    props = details.get("properties") or {}
    if not isinstance(props, dict):
        raise BadRequest("notificationDetails.properties must be an object")
    filt = body.get("filter")
    if not isinstance(filt, str) or not filt:
        raise BadRequest("filter is required: the tag (or a pattern such as callback/myservice/*) to receive")
    try:
        expire = int(body.get("expire", 3600))
    except (TypeError, ValueError):
        raise BadRequest("expire must be a number of seconds") from None
    if expire < MIN_EXPIRE:
        raise BadRequest(f"expire must be at least {MIN_EXPIRE} seconds")
    sub = Subscription(
        id=uuid.uuid4().hex, subscriber_id=str(body.get("subscriberId") or ""),
        provider=str(body.get("providerName") or "default"), type=kind, device_id=device,
        properties=props, filter=filt, expires_at=now + expire, created_at=now,
    )
    check_target(sub.type, sub.target, allowed)
    return sub


def check_target(kind: str, target: str, allowed: list[str]) -> None:
    if kind in ("httpcb", "customhttp"):
        if not target.startswith(("http://", "https://")):
            raise BadRequest(f"{kind} needs an http(s) URL as deviceId or properties.url, not {target[:60]!r}")
        if allowed and not any(target.startswith(prefix) for prefix in allowed):
            raise BadRequest(f"{target[:60]!r} is not in the allow list of notification targets")
