"""``config/notifications.json`` in a cluster: one outbound policy for every node (issue 14, item 5).

A single engine reads the file at start (``NotificationConfig.load``) and nothing here runs. A
cluster node serves the shared document of kind ``notifications`` instead: the file is imported
at start and on ``/admin/config/reload`` when it changed since its last import (the rule of every
import, ``storage/config_docs.py``), and a change stored through any node is applied by every node
when its ``cbe_config`` notice arrives. Applying replaces the rules inside the one
``NotificationConfig`` (and its ``UrlPolicy``) that status notifications, Basic HTTP sends and the
FCM client already hold, so none of them has to be told.

The webhook secrets are sealed with the engine's secret key before they are stored, as the push
credentials are: the database alone never reveals one (every node holds the same key). A document
that does not validate (bad JSON, a bad CIDR, a secret this key cannot open) is refused with the
reason logged, and the node keeps serving the last good one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..secretbox import SecretBox
from ..storage.config_docs import ConfigDoc, content_hash
from ..storage.shared_config import SharedConfig
from .notifier import NotificationConfig, read_object

log = logging.getLogger("engine.notifications")
KIND = NAME = "notifications"  # the one shared document of its kind
FILE = "notifications.json"
SEALED = "sealed_secrets"  # a stored document's secrets, each sealed (the file's key is "secrets")


def sealed_document(raw: dict[str, Any], box: SecretBox) -> str:
    """The stored body of a validated file: its JSON with every secret sealed."""
    body = {key: value for key, value in raw.items() if key != "secrets"}
    body[SEALED] = {prefix: box.seal(secret) for prefix, secret in raw.get("secrets", {}).items()}
    return json.dumps(body, indent=2)


def opened_document(body: str, box: SecretBox, where: str) -> dict[str, Any]:
    """The file's JSON of a stored body (its secrets opened); ``ValueError`` when it cannot be."""
    raw = read_object(body, where)
    if "secrets" in raw:
        raise ValueError(f"{where}: holds secrets in clear; a stored document holds them sealed ({SEALED})")
    sealed = raw.pop(SEALED, {})
    if not isinstance(sealed, dict) or not all(isinstance(v, str) for v in sealed.values()):
        raise ValueError(f"{where}: {SEALED} must map URL prefixes to sealed secrets")
    try:
        raw["secrets"] = {prefix: box.open(token) for prefix, token in sealed.items()}
    except ValueError as e:
        raise ValueError(f"{where}: a secret cannot be opened: {e}") from None
    return raw


def exported_file(body: str, box: SecretBox) -> str:
    """A stored body as ``config export`` writes it: the file an administrator wrote, secrets
    in clear as ``config/notifications.json`` holds them."""
    return json.dumps(opened_document(body, box, f"stored {FILE}"), indent=2) + "\n"


class SharedOutboundConfig:
    """A cluster node's ``notifications.json``: the shared document, served through ``config``."""

    def __init__(self, path: Path, box: SecretBox, shared: SharedConfig):
        self.path = path
        self.box = box
        self.shared = shared
        self.config = NotificationConfig(box)  # the object every part holds; its rules are replaced

    async def open(self) -> NotificationConfig:
        """At start: the stored document, then the file if it changed since its last import.
        A node refuses to start on a bad file or a bad stored document, as a single engine does
        on a bad file, unless the other one is good and serves."""
        stored = await self.shared.document(KIND, NAME)
        problem: ValueError | None = None
        if stored is not None:
            try:
                self._apply(stored)
            except ValueError as e:
                problem = e
        try:
            imported = await self.import_file()
        except ValueError as e:
            if stored is None or problem is not None:
                raise
            log.error("%s refused; the stored one (revision %d) serves: %s", self.path, stored.revision, e)
            imported = False
        if problem is not None and not imported:
            raise problem
        self.shared.follow(KIND, self._reread)
        return self.config

    async def reload(self) -> bool:
        """``/admin/config/reload``: import the file if it changed; whether it did. A bad file
        is logged and changes nothing."""
        try:
            return await self.import_file()
        except ValueError as e:
            log.error("%s refused; the outbound policy served stays: %s", self.path, e)
            return False

    async def import_file(self) -> bool:
        """Store the file (validated, its secrets sealed) unless it was imported before, and
        serve it; ``ValueError`` (nothing stored) when it does not validate."""
        if not self.path.is_file():
            return False
        try:
            data = self.path.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{self.path}: cannot be read as UTF-8 text: {e}") from None
        raw = read_object(text, str(self.path))
        config = NotificationConfig.from_raw(raw, str(self.path), self.box)
        stored = await self.shared.document(KIND, NAME)
        if stored is not None and self._says(stored, raw):
            self._apply(stored)  # served already, unless another node stored it since this one looked
            return False
        doc = await self.shared.import_source(KIND, NAME, sealed_document(raw, self.box), content_hash(data))
        if doc is None:  # this very file was imported before (by another node since this one looked)
            await self._reread(NAME)
            return False
        if not self.shared.superseded(KIND, NAME, doc.revision):
            self.config.adopt(config)
        return True

    def _says(self, stored: ConfigDoc, raw: dict[str, Any]) -> bool:
        """Whether the stored document says what the file says (e.g. the file was exported from
        it): sealing is not repeatable, so the import's own test of the body would always differ."""
        try:
            return opened_document(stored.body, self.box, FILE) == {"secrets": {}, **raw}
        except ValueError:
            return False  # a stored document this node cannot read is replaced by a good file

    async def _reread(self, name: str) -> None:
        """Another node stored a new document: serve it here too (or keep the old one if bad)."""
        doc = await self.shared.document(KIND, name) if name == NAME else None
        if doc is None:
            return
        try:
            self._apply(doc)
        except ValueError as e:
            log.error("%s refused here; the outbound policy served stays: %s", FILE, e)

    def _apply(self, doc: ConfigDoc) -> None:
        if self.shared.superseded(KIND, NAME, doc.revision - 1):
            return  # this revision or a later one is served already
        where = f"stored {FILE} (revision {doc.revision})"
        self.config.adopt(NotificationConfig.from_raw(opened_document(doc.body, self.box, where), where, self.box))
        self.shared.seen(KIND, NAME, doc.revision)
        log.info("outbound policy: %s applied", where)
