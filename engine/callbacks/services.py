"""Callback services and business-hours services, one JSON file each under ``config/``.

``config/services/<name>.json`` holds a service's options (Genesys names; unknown ones are kept
for the flow); ``config/business-hours/<name>.json`` a weekly calendar with exceptions. The admin
API reads and replaces them; a replacement is validated first and written atomically, so a bad
one changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from .business_hours import BusinessHours
from .options import with_defaults

log = logging.getLogger("engine.callbacks")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ServiceError(ValueError):
    """A service definition or name that cannot be used; the message says why."""


class ServiceRegistry:
    def __init__(self, config_dir: Path):
        self.services_dir = Path(config_dir) / "services"
        self.hours_dir = Path(config_dir) / "business-hours"
        self.raw: dict[str, dict[str, Any]] = {}
        self.options: dict[str, dict[str, Any]] = {}
        self.hours: dict[str, BusinessHours] = {}
        self.raw_hours: dict[str, dict[str, Any]] = {}

    def load(self) -> None:
        """Read every file; a broken one is logged and skipped, the others serve."""
        for path in sorted(self.hours_dir.glob("*.json")) if self.hours_dir.is_dir() else []:
            try:
                self._set_hours(path.stem, _read_json(path))
            except (ValueError, OSError) as e:
                log.error("business hours %s refused: %s", path, e)
        for path in sorted(self.services_dir.glob("*.json")) if self.services_dir.is_dir() else []:
            try:
                self._set_service(path.stem, _read_json(path))
            except (ValueError, OSError) as e:
                log.error("service %s refused: %s", path, e)

    # -- services ------------------------------------------------------------------------
    def get(self, name: str) -> dict[str, Any]:
        options = self.options.get(name)
        if options is None:
            raise KeyError(name)
        return options

    def _set_service(self, name: str, raw: Any) -> dict[str, Any]:
        if not NAME.match(name):
            raise ServiceError(f"service name {name!r} must be letters, digits, '.', '_' or '-'")
        if not isinstance(raw, dict):
            raise ServiceError("a service is a JSON object of options")
        options = with_defaults(raw)
        hours = options["_business_hours_service"]
        if hours and hours not in self.hours:
            raise ServiceError(f"_business_hours_service {hours!r} is not defined in {self.hours_dir}")
        self.raw[name] = dict(raw)
        self.options[name] = options
        return options

    def put(self, name: str, raw: Any) -> dict[str, Any]:
        """Validate, then write ``config/services/<name>.json``; raises ``ServiceError``/``ValueError``."""
        options = self._set_service(name, raw)
        _write_json(self.services_dir / f"{name}.json", raw)
        return options

    def business_hours(self, service: dict[str, Any]) -> BusinessHours | None:
        name = service.get("_business_hours_service")
        return self.hours.get(name) if name else None

    # -- business hours --------------------------------------------------------------------
    def _set_hours(self, name: str, raw: Any) -> BusinessHours:
        if not NAME.match(name):
            raise ServiceError(f"business hours name {name!r} must be letters, digits, '.', '_' or '-'")
        if not isinstance(raw, dict):
            raise ServiceError("business hours are a JSON object")
        hours = BusinessHours.from_dict(raw)
        self.hours[name] = hours
        self.raw_hours[name] = dict(raw)
        return hours

    def put_hours(self, name: str, raw: Any) -> BusinessHours:
        hours = self._set_hours(name, raw)
        _write_json(self.hours_dir / f"{name}.json", raw)
        return hours


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ServiceError(f"{path}: line {e.lineno} column {e.colno}: {e.msg}") from None


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
