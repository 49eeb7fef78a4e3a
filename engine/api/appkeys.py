"""Typed keys for what the application and requests carry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from ..app import Engine
    from ..callbacks.service import CallbackService
    from ..flows import FlowRegistry
    from ..notifications.service import NotificationService
    from ..sessions.manager import SessionManager
    from ..settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
ENGINE: web.AppKey[Engine] = web.AppKey("engine")
KEYS: web.AppKey[dict[str, str]] = web.AppKey("keys")
KEYS_GENERATED: web.AppKey[bool] = web.AppKey("keys_generated")
MANAGER: web.AppKey[SessionManager] = web.AppKey("manager")
FLOWS: web.AppKey[FlowRegistry] = web.AppKey("flows")
CALLBACKS: web.AppKey[CallbackService] = web.AppKey("callbacks")
NOTIFICATIONS: web.AppKey[NotificationService] = web.AppKey("notifications")
ROLE: web.RequestKey[Any] = web.RequestKey("role")
