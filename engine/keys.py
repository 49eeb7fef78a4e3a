"""API keys: from the environment when set, otherwise generated once and kept in the data folder."""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

from .settings import Settings

log = logging.getLogger("engine.keys")
ADMIN, DEVELOPER, CLIENT = "administrator", "developer", "client"


def key_file(settings: Settings) -> Path:
    return settings.data_dir / "keys.json"


def load_keys(settings: Settings) -> tuple[dict[str, str], bool]:
    """Map of key -> role, and whether keys were generated just now."""
    stored: dict[str, str] = {}
    path = key_file(settings)
    if path.is_file():
        stored = json.loads(path.read_text())
    generated = False
    for role, attr in ((ADMIN, "admin_key"), (DEVELOPER, "developer_key"), (CLIENT, "client_key")):
        if getattr(settings, attr):
            continue
        if role not in stored:
            stored[role] = secrets.token_urlsafe(24)
            generated = True
    if generated:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f)
        os.chmod(path, 0o600)
    keys = {
        settings.admin_key or stored[ADMIN]: ADMIN,
        settings.developer_key or stored[DEVELOPER]: DEVELOPER,
        settings.client_key or stored[CLIENT]: CLIENT,
    }
    return keys, generated
