"""Typed keys for what the application and requests carry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ..keys import ApiKey, KeyStore
    from ..runtime import Runtime
    from ..settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
KEYS: web.AppKey[KeyStore] = web.AppKey("keys")
INITIAL_KEY: web.AppKey[Path | None] = web.AppKey("initial_key")  # where a first key's secret was written
ROLE: web.RequestKey[str] = web.RequestKey("role")
API_KEY: web.RequestKey[ApiKey] = web.RequestKey("api_key")
