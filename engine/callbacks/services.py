"""Callback services and business-hours services, one JSON file each under ``config/``.

``config/services/<name>.json`` holds a service's options (Genesys names; unknown ones are kept
for the flow); ``config/business-hours/<name>.json`` a weekly calendar with exceptions. The admin
API reads and replaces them. A replacement is validated first (including the transaction list
and virtual queue it names), then written durably, and only then made live: a write that fails
changes nothing, so what the API shows is what a restart will load.

In a cluster (``shared``) the database holds them instead (``engine/storage/config_docs.py``): the
files are imported at start when they changed since their last import, a replacement is stored
(and announced to the other nodes) before it is served, and what another node stored is re-read
and served here; one that does not validate here is logged and the old one kept.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from ..atomic_file import save
from ..storage.config_docs import content_hash
from ..storage.shared_config import SharedConfig
from .business_hours import BusinessHours
from .options import with_defaults

log = logging.getLogger("engine.callbacks")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Names the admin API uses beside service names (``GET /admin/services/options``).
RESERVED_NAMES = frozenset({"options"})
Known = Callable[[], Collection[str]]
SERVICE, HOURS = "service", "business_hours"  # their kinds of shared document


class ServiceError(ValueError):
    """A service definition or name that cannot be used; the message says why."""


class ServiceRegistry:
    def __init__(self, config_dir: Path, references: Mapping[str, tuple[str, Known]] | None = None,
                 checks: Sequence[Callable[[dict[str, Any]], list[str]]] = (), shared: SharedConfig | None = None):
        """``references``: option -> (what it names, the names that exist now), e.g.
        ``{"_urs_virtual_queue": ("virtual queue", lambda: queues)}``; built by the engine so this
        layer need not know the platform or the notification lists. ``checks``: more problems a
        replacement may have (e.g. a notification target the outbound URL policy refuses).
        ``shared``: a cluster's shared configuration, where the definitions live instead of files."""
        self.services_dir = Path(config_dir) / "services"
        self.hours_dir = Path(config_dir) / "business-hours"
        self.references = dict(references or {})
        self.checks = tuple(checks)
        self.raw: dict[str, dict[str, Any]] = {}
        self.options: dict[str, dict[str, Any]] = {}
        self.hours: dict[str, BusinessHours] = {}
        self.raw_hours: dict[str, dict[str, Any]] = {}
        self.shared = shared

    async def open(self) -> None:
        """Serve the definitions: the files (``load``), or in a cluster the stored ones and the
        files changed since they were last imported."""
        if self.shared is None:
            self.load()
            return
        shared = self.shared
        for kind, folder, apply in ((HOURS, self.hours_dir, self._apply_hours), (SERVICE, self.services_dir,
                                                                                 self._apply_service)):
            for doc in await shared.documents(kind):
                self._take(kind, doc.name, doc.body, apply)
                shared.seen(kind, doc.name, doc.revision)
            for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                try:
                    raw_bytes = path.read_bytes()
                    body = _json_bytes(_read_json(path)).decode()
                    apply(path.stem, body, check_only=True)
                except (ValueError, OSError) as e:
                    log.error("%s refused: %s", path, e)
                    continue
                doc = await shared.import_source(kind, path.stem, body, content_hash(raw_bytes))
                if doc is not None:
                    self._take(kind, doc.name, doc.body, apply)
            shared.follow(kind, partial(self._reread, kind, apply))

    def _take(self, kind: str, name: str, body: str, apply: Callable[..., None]) -> bool:
        try:
            apply(name, body)
        except ValueError as e:
            log.error("stored %s %r refused here (the previous one, if any, keeps serving): %s",
                      kind.replace("_", " "), name, e)
            return False
        return True

    async def _reread(self, kind: str, apply: Callable[..., None], name: str) -> None:
        """Another node stored a definition: serve it here too."""
        assert self.shared is not None
        doc = await self.shared.document(kind, name)
        if doc is not None:
            if self._take(kind, name, doc.body, apply):
                log.info("%s %r changed on %s (revision %d)", kind.replace("_", " "), name, doc.updated_by,
                         doc.revision)
            self.shared.seen(kind, name, doc.revision)

    def _apply_service(self, name: str, body: str, check_only: bool = False) -> None:
        raw = json.loads(body)
        options = self._check_service(name, raw)
        if not check_only:
            for problem in self.unknown_references(raw):
                log.error("service %s: %s; callbacks of this service that need it will fail", name, problem)
            self.raw[name], self.options[name] = dict(raw), options

    def _apply_hours(self, name: str, body: str, check_only: bool = False) -> None:
        raw = json.loads(body)
        hours = self._check_hours(name, raw)
        if not check_only:
            self.hours[name], self.raw_hours[name] = hours, dict(raw)

    def load(self) -> None:
        """Read every file; a broken one is logged and skipped, the others serve. A service that
        names a missing list or queue still serves (its callbacks must stay reachable), loudly."""
        for path in sorted(self.hours_dir.glob("*.json")) if self.hours_dir.is_dir() else []:
            try:
                raw = _read_json(path)
                hours = self._check_hours(path.stem, raw)
            except (ValueError, OSError) as e:
                log.error("business hours %s refused: %s", path, e)
                continue
            self.hours[path.stem], self.raw_hours[path.stem] = hours, dict(raw)
        for path in sorted(self.services_dir.glob("*.json")) if self.services_dir.is_dir() else []:
            try:
                raw = _read_json(path)
                options = self._check_service(path.stem, raw)
            except (ValueError, OSError) as e:
                log.error("service %s refused: %s", path, e)
                continue
            for problem in self.unknown_references(raw):
                log.error("service %s: %s; callbacks of this service that need it will fail", path, problem)
            self.raw[path.stem], self.options[path.stem] = dict(raw), options

    # -- services ------------------------------------------------------------------------
    def flows_in_use(self) -> set[str]:
        """The flows that run callbacks: only the callback service starts them, with a record."""
        return {str(options["_service"]) for options in self.options.values() if options.get("_service")}

    def get(self, name: str) -> dict[str, Any]:
        options = self.options.get(name)
        if options is None:
            raise KeyError(name)
        return options

    def _check_service(self, name: str, raw: Any) -> dict[str, Any]:
        """The effective options of a definition, or ``ServiceError``; changes nothing."""
        if not NAME.match(name):
            raise ServiceError(f"service name {name!r} must be letters, digits, '.', '_' or '-'")
        if name in RESERVED_NAMES:
            raise ServiceError(f"service name {name!r} is reserved (GET /admin/services/{name} lists the "
                               "service options)")
        if not isinstance(raw, dict):
            raise ServiceError("a service is a JSON object of options")
        options = with_defaults(raw)
        hours = options["_business_hours_service"]
        if hours and hours not in self.hours:
            raise ServiceError(f"_business_hours_service {hours!r} is not defined in {self.hours_dir}")
        return options

    def unknown_references(self, raw: dict[str, Any]) -> list[str]:
        """What the options set in ``raw`` name that does not exist (a list, a virtual queue)."""
        problems = []
        for option, (kind, known) in self.references.items():
            value = raw.get(option)
            if value in (None, ""):
                continue
            names = set(known())
            if not isinstance(value, str) or value not in names:
                have = ", ".join(sorted(names)) or "none"
                problems.append(f"{option} {value!r} is not a known {kind} (known: {have})")
        return problems

    async def put(self, name: str, raw: Any) -> dict[str, Any]:
        """Validate, write ``config/services/<name>.json`` durably (in a cluster: store it), then
        serve it.

        Raises ``ServiceError`` (bad definition), ``SaveError`` or ``StorageUnavailable`` (not
        written; nothing changed)."""
        options = self._check_service(name, raw)
        problems = self.unknown_references(raw) + [p for check in self.checks for p in check(raw)]
        if problems:
            raise ServiceError("; ".join(problems))
        if self.shared is not None:
            doc = await self.shared.save(SERVICE, name, _json_bytes(raw).decode())
            if self.shared.superseded(SERVICE, name, doc.revision):
                return options  # stored; what another node stored since is served
        else:
            save(self.services_dir / f"{name}.json", _json_bytes(raw), f"service {name!r}")
        self.raw[name] = dict(raw)
        self.options[name] = options
        return options

    def business_hours(self, service: dict[str, Any]) -> BusinessHours | None:
        name = service.get("_business_hours_service")
        return self.hours.get(name) if name else None

    # -- business hours --------------------------------------------------------------------
    def _check_hours(self, name: str, raw: Any) -> BusinessHours:
        if not NAME.match(name):
            raise ServiceError(f"business hours name {name!r} must be letters, digits, '.', '_' or '-'")
        if not isinstance(raw, dict):
            raise ServiceError("business hours are a JSON object")
        return BusinessHours.from_dict(raw)

    async def put_hours(self, name: str, raw: Any) -> BusinessHours:
        """Like ``put``: validate, write durably (or store), then serve."""
        hours = self._check_hours(name, raw)
        if self.shared is not None:
            doc = await self.shared.save(HOURS, name, _json_bytes(raw).decode())
            if self.shared.superseded(HOURS, name, doc.revision):
                return hours
        else:
            save(self.hours_dir / f"{name}.json", _json_bytes(raw), f"business hours {name!r}")
        self.hours[name] = hours
        self.raw_hours[name] = dict(raw)
        return hours


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ServiceError(f"{path}: line {e.lineno} column {e.colno}: {e.msg}") from None


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")
