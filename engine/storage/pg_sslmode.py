"""libpq's ``sslmode`` in a PostgreSQL URL, given to asyncpg as its ``ssl`` argument.

SQLAlchemy passes a URL's query parameters to ``asyncpg.connect`` as they are, and asyncpg calls
that setting ``ssl`` (same values: disable, allow, prefer, require, verify-ca, verify-full): a URL
written the libpq way (``?sslmode=disable``) failed every connect with "connect() got an
unexpected keyword argument 'sslmode'". Honouring it also lets ``sslmode=disable`` skip the SSL
request instead of asyncpg's default ``prefer``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def asyncpg_ssl_argument(cparams: dict[str, Any]) -> None:
    """Rename ``sslmode`` to ``ssl`` in asyncpg's connect arguments; a bad or conflicting value
    is refused with a clear error (the connect is not attempted)."""
    if "sslmode" not in cparams:
        return
    mode = cparams.pop("sslmode")
    if mode not in SSL_MODES:
        raise ValueError(f"database URL: sslmode={mode!r} is not one of {', '.join(SSL_MODES)}")
    if "ssl" in cparams and cparams["ssl"] != mode:
        raise ValueError(f"database URL: sslmode={mode!r} and ssl={cparams['ssl']!r} disagree; give one")
    cparams["ssl"] = mode


def _on_connect(dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
    if dialect.driver == "asyncpg":
        asyncpg_ssl_argument(cparams)


def accept_libpq_sslmode() -> None:
    """Apply ``asyncpg_ssl_argument`` to every engine's connects (installed once)."""
    if not event.contains(Engine, "do_connect", _on_connect):
        event.listen(Engine, "do_connect", _on_connect)
