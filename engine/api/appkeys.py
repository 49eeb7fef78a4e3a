"""Typed keys for what the application and requests carry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ..callbacks.service import CallbackService
    from ..keys import ApiKey, KeyStore
    from ..notifications.service import NotificationService
    from ..runtime import Runtime
    from ..sessions.flows import FlowRegistry
    from ..sessions.manager import SessionManager
    from ..settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
KEYS: web.AppKey[KeyStore] = web.AppKey("keys")
INITIAL_KEY: web.AppKey[Path | None] = web.AppKey("initial_key")  # where a first key's secret was written
MANAGER: web.AppKey[SessionManager] = web.AppKey("manager")
FLOWS: web.AppKey[FlowRegistry] = web.AppKey("flows")
CALLBACKS: web.AppKey[CallbackService] = web.AppKey("callbacks")
NOTIFICATIONS: web.AppKey[NotificationService] = web.AppKey("notifications")
ROLE: web.RequestKey[str] = web.RequestKey("role")
API_KEY: web.RequestKey[ApiKey] = web.RequestKey("api_key")
