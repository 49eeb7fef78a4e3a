"""A cluster's console sign-ins (``console_sessions``, migration 8): a sign-in made on one node is
valid on every node. A row holds the SHA-256 of the cookie's token (never the token), the key's
name and hash at sign-in, the CSRF token and the times. A sign-in and a sign-out are announced on
``cbe_config`` (kind ``console_session``, the token's hash as name), so every node keeps the live
sign-ins in memory and a request never waits for the database; the last-use times are exchanged
in batches (``exchange``), often enough for an idle limit counted in minutes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .config_docs import CHANNEL, console_sessions, notice
from .shared_config import SharedConfig

KIND = "console_session"
_NOTIFY = "SELECT pg_notify($1, $2)"
_INSERT = ("INSERT INTO console_sessions (token_sha256, key_name, key_hash, csrf, signed_in, last_used) "
           "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (token_sha256) DO NOTHING")
_TOUCH = "UPDATE console_sessions SET last_used = greatest(last_used, $2) WHERE token_sha256 = $1"
_EXPIRE = "DELETE FROM console_sessions WHERE last_used < $1 OR signed_in < $2"


class SignInTable:
    """The port ``engine.console.session.SessionStore`` uses in a cluster."""

    def __init__(self, shared: SharedConfig):
        self.shared = shared

    async def read(self, token_sha256: str | None = None) -> list[dict[str, Any]]:
        """Every sign-in (or the one of ``token_sha256``) as a dict of the columns."""
        query = select(console_sessions)
        if token_sha256 is not None:
            query = query.where(console_sessions.c.token_sha256 == token_sha256)
        return await self.shared.store.fetch_all(query)

    async def add(self, row: dict[str, Any]) -> None:
        await self._write([(_INSERT, [tuple(row[c.name] for c in console_sessions.c)])], row["token_sha256"])

    async def remove(self, token_sha256: str) -> None:
        await self._write([("DELETE FROM console_sessions WHERE token_sha256 = $1", [(token_sha256,)])], token_sha256)

    async def exchange(self, used: dict[str, float], idle_before: float,
                       signed_in_before: float) -> list[dict[str, Any]]:
        """Store this node's last uses, forget the sign-ins that expired, and read them all back."""
        async with self.shared.store.engine.begin() as conn:
            if used:
                await conn.exec_driver_sql(_TOUCH, list(used.items()))
            await conn.exec_driver_sql(_EXPIRE, (idle_before, signed_in_before))
        return await self.read()

    async def _write(self, statements: list[tuple[str, list[tuple[Any, ...]]]], token_sha256: str) -> None:
        async def write() -> None:
            async with self.shared.store.engine.begin() as conn:
                for sql, rows in statements:
                    await conn.exec_driver_sql(sql, rows)
                await conn.exec_driver_sql(_NOTIFY, (CHANNEL, notice(KIND, token_sha256, 0)))

        await self.shared.guarded("a console sign-in", write())
