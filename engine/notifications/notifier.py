"""Status notifications: from a callback's status event to deliveries (SPEC 6, seed 000).

For each status event of a callback whose notifications are enabled, the notifier builds the
seed's message (``event_id``, ``timestamp``, ``_service_id``, ``_service_name``,
``_callback_state``, the ``notify_params`` values, the ``notify_custom`` keys) and publishes it
under the callback's tag; every live subscription whose filter matches gets a delivery.
``subscribe_notify`` subscribes on the client's behalf when the callback is created and removes
the subscription when the callback ends; ``notify`` only publishes.

Settings are resolved per callback: create-request parameters > service options > the
transaction list's ``[properties]``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic_file import save
from ..callbacks.event_catalog import ALL_EVENTS
from ..callbacks.history import public_target
from ..callbacks.records import BadRequest, parse_time
from ..callbacks.services import NAME, ServiceRegistry
from ..ids import random_id
from ..scxml.clock import Clock
from ..secretbox import SecretBox
from ..storage.config_docs import content_hash
from ..storage.shared_config import SharedConfig
from ..urlpolicy import UrlPolicy, UrlRefused
from .delivery import Delivery, Dispatcher
from .subscriptions import Subscription, SubscriptionRegistry, callback_tag
from .transaction_list import PROPERTY_KEYS, TransactionList, parse
from .webhooks import message_id

log = logging.getLogger("engine.notifications")
ENABLED = ("notify", "subscribe_notify")
PLACEHOLDER = re.compile(r"^<[^<>\x00-\x1f]*>$")
DEFAULT_MAX_ATTEMPTS = 8
_RECORD_KEYS = tuple(sorted(PROPERTY_KEYS))
_OWN_KEYS = PROPERTY_KEYS | {"_callback_events_list"}  # a record's keys its notification settings read
# ...and what the subscription made on a callback's behalf also follows: its end of life
_FOLLOWED = _OWN_KEYS | {"_expiration_time"}
SUBSCRIPTION_MARGIN = 86400.0  # a callback's subscription outlives its expiration time by this
MAX_RESOLVED = 4096  # bases of resolved notification settings kept (most engines use a handful)
LIST_KIND = "transaction_list"  # a list's kind of shared document (a cluster's)
_MISSING = object()


@dataclass
class NotificationConfig:
    """``config/notifications.json``: the engine's outbound URL policy (``allowed_targets``, a
    list of origins, empty = any origin with public addresses; ``allowed_networks``, CIDR ranges
    that may be reached although private), per-target secrets and the attempts per delivery.
    ``box`` seals the webhook secrets the engine stores."""

    box: SecretBox
    policy: UrlPolicy = field(default_factory=UrlPolicy)
    secrets: dict[str, str] = field(default_factory=dict)  # URL prefix -> Standard Webhooks secret
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    @classmethod
    def load(cls, path: Path, box: SecretBox) -> NotificationConfig:
        if not path.is_file():
            return cls(box)
        return cls.from_raw(read_object(path.read_text(), str(path)), str(path), box)

    @classmethod
    def from_raw(cls, raw: dict[str, Any], where: str, box: SecretBox) -> NotificationConfig:
        """From the parsed JSON (a file's, or a cluster's stored document once its secrets are
        opened); ``ValueError`` starting with ``where`` names what is wrong."""
        secrets = raw.get("secrets", {})
        if not isinstance(secrets, dict) or not all(isinstance(v, str) and v for v in secrets.values()):
            raise ValueError(f"{where}: secrets must map URL prefixes to secret strings")
        max_attempts = raw.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
            raise ValueError(f"{where}: max_attempts must be a whole number, at least 1")
        return cls(box, UrlPolicy.from_config(raw, where), dict(secrets), max_attempts)

    def adopt(self, other: NotificationConfig) -> None:
        """Serve ``other``'s settings in this very object, which the notifier, the dispatcher,
        Basic HTTP and FCM hold (a cluster's shared document changed)."""
        self.policy.adopt(other.policy)
        self.secrets, self.max_attempts = other.secrets, other.max_attempts

    def secret_for(self, url: str) -> str | None:
        if not self.secrets:
            return None
        best = max((p for p in self.secrets if url.startswith(p)), key=len, default=None)
        return self.secrets[best] if best else None


def read_object(text: str, where: str) -> dict[str, Any]:
    """The JSON object of a ``notifications.json``; ``ValueError`` naming ``where`` otherwise."""
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{where}: not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a JSON object")
    return raw


def target_problems(options: Mapping[str, Any], policy: UrlPolicy) -> list[str]:
    """Why the status notification target set in ``options`` (a create request, a service, a
    transaction list's ``[properties]``) cannot be used; empty when it can or none is set."""
    target = options.get("_status_notification_target")
    kind = str(options.get("_status_notification_type") or "httpcb").strip()
    if target in (None, "") or kind != "httpcb":
        return []
    if isinstance(target, str) and PLACEHOLDER.match(target.strip()):
        return []  # the seed's sample list says "<your URL>": a template, refused only if ever used
    try:
        policy.check(str(target).strip() if isinstance(target, str) else target)
    except UrlRefused as e:
        return [f"_status_notification_target: {e}"]
    return []


class TransactionLists:
    """``config/transaction-lists/<name>.cfg``, read at start and replaced through the admin API;
    in a cluster shared documents of kind ``transaction_list`` (as services are, ``services.py``)."""

    def __init__(self, config_dir: Path, check: Callable[[dict[str, Any]], list[str]] | None = None,
                 shared: SharedConfig | None = None):
        """``check``: problems of a replacement's ``[properties]`` (the outbound URL policy)."""
        self.folder = Path(config_dir) / "transaction-lists"
        self.lists: dict[str, TransactionList] = {}
        self.check = check
        self.shared = shared

    async def open(self) -> None:
        """Serve the lists: the files (``load``), or in a cluster the stored ones and the files
        changed since their last import."""
        if self.shared is None:
            self.load()
            return
        for doc in await self.shared.documents(LIST_KIND):
            self._take(doc.name, doc.body)
            self.shared.seen(LIST_KIND, doc.name, doc.revision)
        for path in sorted(self.folder.glob("*.cfg")) if self.folder.is_dir() else []:
            try:
                raw = path.read_bytes()
                text = raw.decode("utf-8")
                parsed = parse(text, path.stem)
            except (ValueError, OSError) as e:
                log.error("transaction list %s refused: %s", path, e)
                continue
            if await self.shared.import_source(LIST_KIND, path.stem, text, content_hash(raw)) is not None:
                self.lists[path.stem] = parsed
        self.shared.follow(LIST_KIND, self._reread)

    def _take(self, name: str, text: str) -> None:
        try:
            self.lists[name] = parse(text, name)
        except ValueError as e:
            log.error("stored transaction list %r refused here (the previous one, if any, keeps serving): %s",
                      name, e)

    async def _reread(self, name: str) -> None:
        """Another node stored a list: serve it here too."""
        assert self.shared is not None
        doc = await self.shared.document(LIST_KIND, name)
        if doc is not None:
            self._take(name, doc.body)
            self.shared.seen(LIST_KIND, name, doc.revision)

    def load(self) -> None:
        for path in sorted(self.folder.glob("*.cfg")) if self.folder.is_dir() else []:
            try:
                self.lists[path.stem] = parse(path.read_text(encoding="utf-8"), path.stem)
            except (ValueError, OSError) as e:
                log.error("transaction list %s refused: %s", path, e)

    def names(self) -> list[str]:
        return list(self.lists)

    def get(self, name: str) -> TransactionList | None:
        return self.lists.get(name)

    async def put(self, name: str, text: str) -> TransactionList:
        """Parse, write durably (or store), then serve; ``SaveError`` or ``StorageUnavailable``
        when not written (nothing changed)."""
        if not NAME.match(name):
            raise ValueError(f"list name {name!r} must be letters, digits, '.', '_' or '-'")
        parsed = parse(text, name)
        problems = self.check(parsed.properties) if self.check else []
        if problems:
            raise ValueError(f"transaction list {name!r} [properties]: {'; '.join(problems)}")
        if self.shared is not None:
            doc = await self.shared.save(LIST_KIND, name, text)
            if self.shared.superseded(LIST_KIND, name, doc.revision):
                return parsed  # stored; what another node stored since is served
        else:
            save(self.folder / f"{name}.cfg", text.encode("utf-8"), f"transaction list {name!r}")
        self.lists[name] = parsed
        return parsed


class StatusNotifier:
    def __init__(self, services: ServiceRegistry, lists: TransactionLists, subscriptions: SubscriptionRegistry,
                 dispatcher: Dispatcher, clock: Clock, config: NotificationConfig, new_id: Any):
        self.services = services
        self.lists = lists
        self.subscriptions = subscriptions
        self.dispatcher = dispatcher
        self.clock = clock
        self.config = config
        self.new_id = new_id  # ids of stored deliveries (the store's sequence)
        self.new_deliveries: list[Delivery] = []  # written with the next batch, then dispatched
        # what settings are resolved from -> (the service and list objects, the settings): ``_settings``
        self._resolved: dict[Any, tuple[Any, Any, dict[str, Any]]] = {}

    # -- settings -----------------------------------------------------------------------
    def settings_for(self, record: dict[str, Any]) -> dict[str, Any]:
        service_raw = self.services.raw.get(record["_service_name"], {})
        list_name = record.get("_callback_events_list") or service_raw.get("_callback_events_list") or ""
        tlist = self.lists.lists.get(list_name) if list_name else None
        if list_name and tlist is None:
            log.warning("callback %s names transaction list %r, which is not loaded", record["_id"], list_name)
        out: dict[str, Any] = {"list": tlist, "list_name": list_name}
        for key in PROPERTY_KEYS:
            for layer in (record, service_raw, tlist.properties if tlist else {}):
                if key in layer and layer[key] not in (None, ""):
                    out[key] = layer[key]
                    break
        enable = str(out.get("_enable_status_notification", "false")).strip().lower()
        out["_enable_status_notification"] = "notify" if enable == "to_notify" else enable
        out["_status_notification_type"] = str(out.get("_status_notification_type", "httpcb")).strip()
        out["_status_notification_target"] = str(out.get("_status_notification_target", "")).strip()
        out["_status_notification_debug"] = str(out.get("_status_notification_debug", "false")).lower() == "true"
        return out

    def language_for(self, record: dict[str, Any]) -> str | None:
        """The callback's ``_status_notification_language`` by the notification settings' own
        precedence (request > service > its transaction list's ``[properties]``): push texts use it."""
        return self._settings(record).get("_status_notification_language")

    def _settings(self, record: dict[str, Any]) -> dict[str, Any]:
        """``settings_for(record)``, resolved once per basis: the service, the transaction list it
        names and the record's own notification keys. A callback reports ~15 events and each asks
        for its settings, and thousands of callbacks of a service share one basis: keeping them per
        callback cost half a KiB of each waiting callback. Reloads replace the service's and the
        list's objects, so identity tells a stale entry; a basis holding a value that cannot be a
        key (a flow may set a list) is resolved each time. Most records have no notification key
        of their own: their basis is the service's name alone, found without reading the keys."""
        name = record["_service_name"]
        service_raw = self.services.raw.get(name)
        basis: Any
        if record.keys().isdisjoint(_OWN_KEYS):  # the service (and its list) decide everything
            list_name = service_raw.get("_callback_events_list") if service_raw is not None else None
            basis = name
        else:
            list_name = record.get("_callback_events_list") or (service_raw or {}).get("_callback_events_list")
            own = tuple(map(record.get, _RECORD_KEYS))
            basis = (name, list_name, own, tuple(map(type, own)))  # types: True and 1 are equal keys
        tlist = self.lists.lists.get(list_name) if list_name else None
        try:
            found = self._resolved.get(basis)
        except TypeError:  # an unhashable value among the record's keys
            return self.settings_for(record)
        if found is not None and found[0] is service_raw and found[1] is tlist:
            return found[2]
        settings = self.settings_for(record)
        if found is None and len(self._resolved) >= MAX_RESOLVED:
            self._resolved.pop(next(iter(self._resolved)))
        self._resolved[basis] = (service_raw, tlist, settings)
        return settings

    def check_request(self, service_name: str, keys: dict[str, Any]) -> None:
        """Refuse a create whose effective notification target (request > service > list) the
        outbound URL policy does not allow: ``BadRequest`` naming the field and the reason."""
        if keys.keys().isdisjoint(_OWN_KEYS):  # the service's settings, resolved once (every create asks)
            settings = self._settings({"_service_name": service_name, "_id": "(new)"})
        else:
            settings = self.settings_for({**keys, "_service_name": service_name, "_id": "(new)"})
        problems = target_problems(settings, self.config.policy)
        if problems:
            raise BadRequest("; ".join(problems))

    # -- callback lifecycle hooks ----------------------------------------------------------------
    def callback_created(self, record: dict[str, Any]) -> None:
        cfg = self._settings(record)
        if cfg["_enable_status_notification"] != "subscribe_notify":
            return
        target, kind = cfg["_status_notification_target"], cfg["_status_notification_type"]
        if not target:
            log.warning("callback %s: subscribe_notify without _status_notification_target", record["_id"])
            return
        now = self.clock.now()
        options = self.services.options.get(record["_service_name"], {})
        # It is removed when the callback ends; the expiry is a backstop, so it must come after
        # the callback's own (a callback scheduled days ahead expires days ahead).
        expires_at = now + 2 * options.get("_ttl", 86400) + SUBSCRIPTION_MARGIN
        try:  # a flow's <cb:update> may have written anything there: then the default stands
            expires = parse_time(record.get("_expiration_time"), "_expiration_time")
        except ValueError:
            expires = None
        if expires is not None:
            expires_at = max(expires_at, expires + SUBSCRIPTION_MARGIN)
        self.subscriptions.add(Subscription(
            id=random_id(), subscriber_id=f"callback:{record['_id']}",
            provider=str(cfg.get("_status_notification_provider") or "default"), type=kind, device_id=target,
            properties={}, filter=callback_tag(record["_service_name"], record["_id"]),
            expires_at=expires_at, created_at=now, callback_id=record["_id"],
            max_attempts=options.get("_max_notify_delivery_attempts"),
        ))

    @staticmethod
    def remakes(keys: Mapping[str, Any]) -> bool:
        """Whether a change of ``keys`` makes a callback's subscription again (``callback_updated``)."""
        return not keys.keys().isdisjoint(_FOLLOWED)

    def callback_updated(self, record: dict[str, Any], keys: Mapping[str, Any]) -> None:
        """Keys changed (a client's update, a reschedule, the flow's ``<cb:update>``): when they
        are ones the callback's notification settings or its subscription's expiry follow, the
        subscription made on its behalf is made again from the record as it is now (or dropped,
        if it no longer asks for ``subscribe_notify``)."""
        if not self.remakes(keys):
            return
        self.callback_ended(record)
        self.callback_created(record)

    def callback_ended(self, record: dict[str, Any]) -> None:
        for sub in self.subscriptions.for_callback(record["_id"]):
            self.subscriptions.remove(sub.id)

    def on_event(self, record: dict[str, Any], name: str, values: Mapping[str, Any],
                 session_id: str | None = None) -> None:
        cfg = self._settings(record)
        if cfg["_enable_status_notification"] not in ENABLED:
            return
        tlist: TransactionList | None = cfg["list"]
        if tlist is not None:
            spec = tlist.events.get(name)
            if spec is None:
                return  # with a list, only its events are reported
            params, custom = spec.params, spec.custom
        else:
            params, custom = ALL_EVENTS.get(name, ()), {}
        message = status_message(name, self.clock.now(), record, values, params, custom)
        if cfg["_status_notification_debug"]:
            message["_debug"] = {"list": cfg["list_name"] or "(default set)", "session": session_id,
                                 "tag": callback_tag(record["_service_name"], record["_id"])}
        options = self.services.options.get(record["_service_name"], {})
        sent = self.publish(callback_tag(record["_service_name"], record["_id"]), message,
                            max_attempts=options.get("_max_notify_delivery_attempts"))
        if cfg["_status_notification_debug"]:  # the seed's debug mode: in the payload and in the log
            log.info("status notification %s of callback %s: %d deliveries, list %s, %s to %s",
                     name, record["_id"], sent, message["_debug"]["list"], cfg["_enable_status_notification"],
                     public_target(cfg["_status_notification_type"], cfg["_status_notification_target"])
                     or "its subscribers")

    # -- publishing -------------------------------------------------------------------------------
    def publish(self, tag: str, message: dict[str, Any], max_attempts: int | None = None) -> int:
        """Create a delivery per matching subscription; returns how many."""
        now = self.clock.now()
        count = 0
        for sub in self.subscriptions.matching(tag, now):
            http = sub.type in ("httpcb", "customhttp")
            target = sub.target  # a property: read once
            # Stored with the delivery, so sealed: only the dispatcher opens it, to sign.
            secret = sub.sealed_secret or (self._sealed(self.config.secret_for(target)) if http else None)
            body = message
            if sub.type == "fcm":  # an FCM data message: string values only
                body = {"token": sub.device_id, "data": {k: v if isinstance(v, str) else json.dumps(v)
                                                         for k, v in message.items()}}
            self.new_deliveries.append(Delivery(
                id=self.new_id(), key=f"{sub.type}|{target}|{tag}", type=sub.type, target=target,
                device_id=sub.device_id, message=body, webhook_id=message_id("msg"),
                max_attempts=sub.max_attempts or max_attempts or self.config.max_attempts,
                created_at=time.time(), secret=secret,
            ))
            count += 1
        return count

    def _sealed(self, secret: str | None) -> str | None:
        return self.config.box.seal(secret) if secret else None


def status_message(name: str, now: float, record: Mapping[str, Any], values: Mapping[str, Any],
                   params: Iterable[str], custom: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's message for status event ``name``: the fixed fields, each of ``params`` the
    event's values or the record hold, then ``custom`` (a list's ``notify_custom``). The list
    preview of the admin API builds its examples with this too, so it shows what is sent."""
    message: dict[str, Any] = {
        "event_id": name, "timestamp": str(int(now)), "_service_id": record["_id"],
        "_service_name": record["_service_name"], "_callback_state": record["_callback_state"],
    }
    for param in params:
        if param in message:
            continue
        # One lookup each where ``in`` then ``[]`` made two: a flow's values look a name up in the
        # session's datamodel, then the record.
        value = values.get(param, _MISSING)
        if value is _MISSING:
            value = record.get(param, _MISSING)
            if value is _MISSING:
                continue
        message[param] = value
    message.update(custom)
    return message
