"""Subscriptions of the notification API (SPEC 6): who receives messages published under a tag.

A filter is matched against the tag with shell-style wildcards (``callback/samples/*``). Status
events are published under ``callback/<service>/<callback id>``.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..callbacks.records import BadRequest
from ..ids import random_id
from ..secretbox import SecretBox
from ..storage import dumps
from ..urlpolicy import UrlPolicy, UrlRefused
from .expiry_heap import ExpiryHeap
from .filter_index import FilterIndex

TYPES = ("httpcb", "customhttp", "orscb", "fcm")
MIN_EXPIRE = 30
MAX_EXPIRE = 10 * 366 * 86400  # ten years: far enough for anyone, and a finite time


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
    sealed_secret: str | None = None  # properties.secret, encrypted with the engine's data key
    owner: str | None = None  # the name of the API key that made it (None: made before owners were kept)

    @property
    def target(self) -> str:
        """The URL (httpcb, customhttp) or session id (orscb) deliveries go to."""
        return str(self.properties.get("url") or self.device_id)

    def matches(self, tag: str, now: float) -> bool:
        return now < self.expires_at and fnmatch.fnmatchcase(tag, self.filter)

    def public(self) -> dict[str, Any]:
        props = dict(self.properties)
        if self.sealed_secret or "secret" in props:
            props["secret"] = "***"
        return {"id": self.id, "subscriberId": self.subscriber_id, "providerName": self.provider,
                "notificationDetails": {"deviceId": self.device_id, "type": self.type, "properties": props},
                "filter": self.filter, "expires": self.expires_at, "owner": self.owner}

    def row(self) -> dict[str, Any]:
        """Every field as one JSON object. The instance's own attributes are exactly its fields:
        ``asdict`` copied them (and ``properties``) deeply first, which was most of the cost of
        the subscription each ``subscribe_notify`` callback stores."""
        return {"id": self.id, "record": dumps(vars(self)), "expires_at": self.expires_at}


@dataclass
class SubscriptionRegistry:
    """Live subscriptions; changes reach storage through the session manager's batches. A
    subscription's secret is sealed with ``box`` as it is added: neither memory dumps of the
    records nor the database hold it in clear.

    Filters are indexed (``FilterIndex``), expiries kept in a heap and subscriptions made for a
    callback found by its id, so publishing, expiring and removing cost what they touch, not the
    number of subscriptions. Matches come in the order the subscriptions were added."""

    box: SecretBox
    items: dict[str, Subscription] = field(default_factory=dict)
    changed: dict[str, Subscription] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    _filters: FilterIndex[Subscription] = field(default_factory=FilterIndex)
    _expiries: ExpiryHeap = field(default_factory=ExpiryHeap)
    _by_callback: dict[str, dict[str, Subscription]] = field(default_factory=dict)
    _order: dict[str, int] = field(default_factory=dict)  # id -> when first added
    _added: Iterator[int] = field(default_factory=itertools.count)
    _reads: list[set[str]] = field(default_factory=list)  # per full read in flight: the ids changed since it began

    def load(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            sub = Subscription(**json.loads(row["record"]))
            self._index(sub)
            if "secret" in sub.properties:  # stored in clear by an older version: seal it now
                self._seal(sub)
                self.changed[sub.id] = sub

    @contextmanager
    def reading(self) -> Iterator[set[str]]:
        """While every stored subscription is read again (a cluster): yields the ids this node
        changed or was told of since the read began. What the read found of them may be older
        than what this node has, so it must not be applied to them."""
        since: set[str] = set()
        self._reads.append(since)
        try:
            yield since
        finally:
            self._reads.remove(since)

    def _touched(self, sub_id: str) -> None:
        for since in self._reads:
            since.add(sub_id)

    def stored(self, sub_id: str, row: dict[str, Any] | None) -> None:
        """Another node changed subscription ``sub_id`` (a cluster): take its stored ``row`` as
        it is (None: it was removed), without writing it again."""
        self._touched(sub_id)
        current = self.items.get(sub_id)
        if row is None:
            if current is not None:
                self._unindex(self.items.pop(sub_id))
                del self._order[sub_id]
            return
        if current is not None and current.row()["record"] == row["record"]:
            return  # this node's own change, or one it has already
        self._index(Subscription(**json.loads(row["record"])))

    def add(self, sub: Subscription) -> Subscription:
        self._touched(sub.id)
        self._seal(sub)
        self._index(sub)
        self.changed[sub.id] = sub
        return sub

    def _index(self, sub: Subscription) -> None:
        old = self.items.pop(sub.id, None)
        if old is not None:  # replaced: it counts as added now
            self._unindex(old)
        self._order[sub.id] = next(self._added)
        self.items[sub.id] = sub
        self._filters.add(sub.filter, sub.id, sub)
        self._expiries.push(sub.id, sub.expires_at)
        if sub.callback_id is not None:
            self._by_callback.setdefault(sub.callback_id, {})[sub.id] = sub

    def _unindex(self, sub: Subscription) -> None:
        self._filters.remove(sub.filter, sub.id)
        self._expiries.discard(sub.id)
        if sub.callback_id is not None:
            mine = self._by_callback.get(sub.callback_id)
            if mine is not None:
                mine.pop(sub.id, None)
                if not mine:
                    del self._by_callback[sub.callback_id]

    def _seal(self, sub: Subscription) -> None:
        secret = sub.properties.pop("secret", None)
        if secret:
            sub.sealed_secret = self.box.seal(str(secret))

    def remove(self, sub_id: str) -> Subscription | None:
        self._touched(sub_id)
        sub = self.items.pop(sub_id, None)
        if sub is not None:
            self._unindex(sub)
            del self._order[sub_id]
            self.changed.pop(sub_id, None)
            self.removed.append(sub_id)
        return sub

    def forget(self, sub_id: str) -> None:
        """Subscription ``sub_id`` out of memory, with nothing to write: this node's change that
        made it will never be stored (its partition was dropped before)."""
        self._touched(sub_id)
        self.changed.pop(sub_id, None)
        sub = self.items.pop(sub_id, None)
        if sub is not None:
            self._unindex(sub)
            del self._order[sub_id]

    def expire(self, now: float) -> None:
        """Remove the subscriptions whose time is up (``expires_at <= now``)."""
        expiries = self._expiries
        if expiries.due(now):
            for sub_id in expiries.pop_expired(now):
                self.remove(sub_id)

    def matching(self, tag: str, now: float) -> list[Subscription]:
        self.expire(now)
        groups = self._filters.groups(tag)
        if len(groups) == 1:
            return list(groups[0].values())
        order = self._order
        return sorted((sub for group in groups for sub in group.values()), key=lambda s: order[s.id])

    def live(self, now: float, owner: str | None = None) -> list[Subscription]:
        """Unexpired subscriptions in the order they were added; ``owner``: only that key's."""
        return sorted((sub for sub in self.items.values() if now < sub.expires_at
                       and (owner is None or sub.owner == owner)), key=lambda s: self._order[s.id])

    def for_callback(self, callback_id: str) -> list[Subscription]:
        return list(self._by_callback.get(callback_id, {}).values())


def parse_request(body: dict[str, Any], now: float, allowed: UrlPolicy) -> Subscription:
    """A subscription from the API body; ``BadRequest`` says what is wrong. ``allowed``: the
    outbound URL policy an httpcb or customhttp target must pass."""
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
    expire = _expire(body.get("expire", 3600))
    secret = props.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret or len(secret) > 1024):
        raise BadRequest("notificationDetails.properties.secret must be a non-empty string (at most 1024 characters)")
    sub = Subscription(
        id=random_id(), subscriber_id=str(body.get("subscriberId") or ""),
        provider=str(body.get("providerName") or "default"), type=kind, device_id=device,
        properties=props, filter=filt, expires_at=now + expire, created_at=now,
    )
    check_target(sub.type, sub.target, allowed, "properties.url" if props.get("url") else "deviceId")
    return sub


def _expire(value: Any) -> float:
    """Seconds a subscription lives: a finite number between the bounds (1e400, NaN and
    negative numbers are refused, not overflowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest("expire must be a number of seconds")
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        raise BadRequest("expire must be a number of seconds") from None
    if not math.isfinite(seconds) or not MIN_EXPIRE <= seconds <= MAX_EXPIRE:
        raise BadRequest(f"expire must be at least {MIN_EXPIRE} and at most {MAX_EXPIRE} seconds")
    return seconds


def check_target(kind: str, target: str, allowed: UrlPolicy, field_name: str = "deviceId") -> None:
    """httpcb and customhttp targets must pass the outbound URL policy."""
    if kind in ("httpcb", "customhttp"):
        try:
            allowed.check(target)
        except UrlRefused as e:
            raise BadRequest(f"notificationDetails.{field_name} ({kind} target): {e}") from None
