"""CALLBACK_SETTINGS (seed 002): per virtual queue, the push threshold and the dialling rules.

``config/callback-settings/<virtual queue>.json``; read and replaced through the admin API.
For callbacks waiting in that queue, ``max_dial_attempts`` and ``retry_interval_seconds``
replace the service's ``_max_dial_attempts`` and ``_dial_retry_timeout``, and ``purge_minutes``
ends a callback that has waited that long (reason PURGED).

In a cluster (``shared``) they are shared documents of kind ``callback_settings`` instead, as
services are (``services.py``): files imported when changed, a replacement stored before served.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic_file import save
from ..storage.config_docs import content_hash
from ..storage.shared_config import SharedConfig
from .services import NAME

log = logging.getLogger("engine.callbacks")
KIND = "callback_settings"

FIELDS = {"push_threshold_minutes": float, "max_dial_attempts": int, "retry_interval_seconds": int,
          "purge_minutes": float}


@dataclass
class QueueSettings:
    push_threshold_minutes: float = 5.0
    max_dial_attempts: int | None = None
    retry_interval_seconds: int | None = None
    purge_minutes: float | None = None

    @classmethod
    def from_dict(cls, raw: Any) -> QueueSettings:
        if not isinstance(raw, dict):
            raise ValueError("CALLBACK_SETTINGS are a JSON object")
        unknown = set(raw) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown CALLBACK_SETTINGS field(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, kind in FIELDS.items():
            if raw.get(name) is None:
                continue
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, not {value!r}")
            if value <= 0 if name != "push_threshold_minutes" else value < 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
            if kind is int and int(value) != value:
                raise ValueError(f"{name} must be a whole number, not {value!r}")
            values[name] = kind(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _body(row: QueueSettings) -> str:
    return json.dumps(row.to_dict(), indent=2) + "\n"


class CallbackSettings:
    def __init__(self, config_dir: Path, shared: SharedConfig | None = None):
        self.folder = Path(config_dir) / "callback-settings"
        self.rows: dict[str, QueueSettings] = {}
        self.shared = shared

    async def open(self) -> list[str]:
        """Serve the settings: the files (``load``), or in a cluster the stored ones and the files
        changed since their last import; returns the problems (files or rows refused)."""
        if self.shared is None:
            return self.load()
        problems = []
        for doc in await self.shared.documents(KIND):
            try:
                self.rows[doc.name] = QueueSettings.from_dict(json.loads(doc.body))
            except ValueError as e:
                problems.append(f"stored {doc.name!r}: {e}")
            self.shared.seen(KIND, doc.name, doc.revision)
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                raw = path.read_bytes()
                row = QueueSettings.from_dict(json.loads(raw))
            except (ValueError, OSError) as e:
                problems.append(f"{path}: {e}")
                continue
            if await self.shared.import_source(KIND, path.stem, _body(row), content_hash(raw)) is not None:
                self.rows[path.stem] = row
        self.shared.follow(KIND, self._reread)
        return problems

    async def _reread(self, queue: str) -> None:
        """Another node stored settings for ``queue``: serve them here (refused: keep the old)."""
        assert self.shared is not None
        doc = await self.shared.document(KIND, queue)
        if doc is None:
            return
        self.shared.seen(KIND, queue, doc.revision)
        try:
            self.rows[queue] = QueueSettings.from_dict(json.loads(doc.body))
        except ValueError as e:
            log.error("stored CALLBACK_SETTINGS for %r refused here (the previous ones keep serving): %s", queue, e)

    def load(self) -> list[str]:
        problems = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                self.rows[path.stem] = QueueSettings.from_dict(json.loads(path.read_text()))
            except (ValueError, OSError) as e:
                problems.append(f"{path}: {e}")
        return problems

    def get(self, queue: str) -> QueueSettings:
        return self.rows.get(queue) or QueueSettings()

    async def put(self, queue: str, raw: Any) -> QueueSettings:
        if not NAME.match(queue):
            raise ValueError(f"virtual queue name {queue!r} must be letters, digits, '.', '_' or '-'")
        row = QueueSettings.from_dict(raw)
        # Durable first, then live: a failed write (SaveError, StorageUnavailable) changes nothing.
        if self.shared is not None:
            doc = await self.shared.save(KIND, queue, _body(row))
            if self.shared.superseded(KIND, queue, doc.revision):
                return row  # stored; what another node stored since is served
        else:
            save(self.folder / f"{queue}.json", _body(row).encode(), f"CALLBACK_SETTINGS for {queue!r}")
        self.rows[queue] = row
        return row

    def dial_options(self, queue: str) -> dict[str, Any]:
        """The queue's dialling rules, replacing the service's ``_max_dial_attempts`` and
        ``_dial_retry_timeout`` in the data a callback's flow starts with."""
        row = self.rows.get(queue)
        out: dict[str, Any] = {}
        if row is not None:
            if row.max_dial_attempts is not None:
                out["_max_dial_attempts"] = row.max_dial_attempts
            if row.retry_interval_seconds is not None:
                out["_dial_retry_timeout"] = row.retry_interval_seconds
        return out

    def purge_seconds(self, queue: str) -> float | None:
        """How long a callback may wait in the queue before it is purged (None: for ever)."""
        row = self.rows.get(queue)
        return row.purge_minutes * 60 if row is not None and row.purge_minutes else None
