"""The console's sign-in sessions: an API key, presented once, becomes a random cookie token.

The browser never holds the key after signing in, only the token, in an HttpOnly cookie its
scripts cannot read. The engine keeps, per session, the SHA-256 of the token (a copy of this
table leaking gives nobody a working cookie), the key's name and the hash that key had at sign-in,
a CSRF token the page must echo on every change, and the sign-in and last-use times.

A session ends when it has been idle ``console_idle_minutes``, ``console_max_hours`` after
sign-in, at sign-out, and as soon as its key is revoked or rotated: each use looks the key up by
name in the key store and compares the stored hash, so a rotated key (same name, new secret)
no longer matches. Sessions live in memory: a restart signs everybody out.

In a cluster (``share``) a sign-in is valid on every node: it is stored (``console_sessions``, the
token's hash only) and announced, and every node keeps the live sign-ins in memory (a request
never waits for the database); a sign-out is announced the same way, and the last-use times are
exchanged every ``EXCHANGE_SECONDS``, so a session used on one node is not idle on another. A
node restarting reads them back: nobody is signed out. The store write follows the answer of the
sign-in by a few milliseconds: a request reaching another node within them is asked to sign in.

Failed sign-ins are counted per remote address over a sliding minute; past the limit the address
is refused (429) until its oldest failure leaves the window, so keys cannot be guessed quickly
through the sign-in form (they are 256 random bits anyway; this keeps the log and CPU quiet).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..api.errors import error_response
from ..keys import ApiKey, KeyStore
from ..storage.console_sessions import SignInTable

log = logging.getLogger("engine.console")

COOKIE = "cbe_console"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 10_000  # the oldest are dropped past this: memory stays bounded whatever happens
FAILURE_WINDOW = 60.0
MAX_FAILURES = 10  # per address and window
MAX_ADDRESSES = 10_000  # addresses with recent failures kept track of
MAX_TOKEN_LENGTH = 128  # a cookie longer than this is not one of ours: not even hashed
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_ENDED = ("the console session ended (signed out, idle too long, too old, or its key was revoked or "
                 "rotated); sign in again")
CSRF_REFUSAL = "CSRF token missing or wrong"
EXCHANGE_SECONDS = 15.0  # a cluster's nodes tell one another their sign-ins' last uses this often


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass
class ConsoleSession:
    key_name: str
    key_sha256: str  # the key's hash at sign-in: a rotation changes it
    csrf: str
    created: float
    last_seen: float

    def expires_at(self, idle: float, longest: float) -> float:
        return min(self.last_seen + idle, self.created + longest)


class SessionStore:
    """Sign-in sessions by token hash, and the failed sign-ins by address; for the key check
    (``engine/api/auth.py``) the ``CookieSessions`` behind the console's cookie."""

    cookie = COOKIE

    def __init__(self, keys: KeyStore, idle_seconds: float, max_seconds: float,
                 clock: Callable[[], float] = time.time):
        self.keys = keys
        self.idle = idle_seconds
        self.longest = max_seconds
        self.clock = clock
        self._sessions: OrderedDict[bytes, ConsoleSession] = OrderedDict()  # oldest sign-in first
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._table: SignInTable | None = None  # a cluster's (share); None: this process only
        self._used: dict[bytes, float] = {}  # last uses not yet told to the other nodes
        self._writes: set[asyncio.Task[Any]] = set()
        self._exchanger: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    # -- signing in and out ----------------------------------------------------------------------
    def sign_in(self, key: ApiKey) -> tuple[str, ConsoleSession]:
        """A new session for this (already authenticated) key: its cookie token and the session."""
        self._drop_expired()
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        token = secrets.token_urlsafe(32)
        now = self.clock()
        session = ConsoleSession(key.name, key.sha256, secrets.token_urlsafe(32), now, now)
        digest = token_digest(token)
        self._sessions[digest] = session
        if self._table is not None:
            self._write(self._table.add({"token_sha256": digest.hex(), "key_name": session.key_name,
                                         "key_hash": session.key_sha256, "csrf": session.csrf,
                                         "signed_in": session.created, "last_used": session.last_seen}))
        return token, session

    def sign_out(self, token: str | None) -> None:
        if token and len(token) <= MAX_TOKEN_LENGTH:
            digest = token_digest(token)
            self._sessions.pop(digest, None)
            if self._table is not None:
                self._write(self._table.remove(digest.hex()))

    # -- in a cluster ------------------------------------------------------------------------------
    async def share(self, table: SignInTable) -> None:
        """Keep the sign-ins in the cluster's table from now on (those already there are live here)."""
        self._table = table
        self._take_all(await table.read())
        self._exchanger = asyncio.get_running_loop().create_task(self._exchange_loop(), name="console sign-ins")

    async def reread(self, name: str) -> None:
        """A sign-in or sign-out announced by another node (``name``: the token's hash; ``""``:
        read them all, after the listener reconnected)."""
        assert self._table is not None
        if not name:
            self._take_all(await self._table.read())
            return
        rows = await self._table.read(name)
        if not rows:
            self._sessions.pop(bytes.fromhex(name), None)
        else:
            self._take(rows[0])

    async def close(self) -> None:
        if self._exchanger is not None:
            self._exchanger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._exchanger
        for task in list(self._writes):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 5)

    def _take(self, row: dict[str, Any]) -> None:
        digest = bytes.fromhex(row["token_sha256"])
        known = self._sessions.get(digest)
        if known is None:
            self._sessions[digest] = ConsoleSession(row["key_name"], row["key_hash"], row["csrf"],
                                                    float(row["signed_in"]), float(row["last_used"]))
        else:
            known.last_seen = max(known.last_seen, float(row["last_used"]))

    def _take_all(self, rows: list[dict[str, Any]]) -> None:
        stored = {bytes.fromhex(r["token_sha256"]) for r in rows}
        recent = self.clock() - EXCHANGE_SECONDS  # a sign-in of this node may still be on its way
        for digest in [d for d, s in self._sessions.items()
                       if d not in stored and d not in self._used and s.created < recent]:
            del self._sessions[digest]  # signed out elsewhere, or expired
        for row in sorted(rows, key=lambda r: r["signed_in"]):
            self._take(row)

    async def _exchange_loop(self) -> None:
        while True:
            await asyncio.sleep(EXCHANGE_SECONDS)
            used, self._used = self._used, {}
            now = self.clock()
            try:
                assert self._table is not None
                rows = await self._table.exchange({d.hex(): t for d, t in used.items()}, now - self.idle,
                                                  now - self.longest)
            except Exception as e:
                log.warning("console sign-ins: could not exchange last uses with the other nodes (%s)", e)
                self._used = {**used, **self._used}
                continue
            self._take_all(rows)

    def _write(self, work: Awaitable[None]) -> None:
        async def logged() -> None:
            try:
                await work
            except Exception as e:
                log.error("console sign-ins: %s; the other nodes do not know of this change", e)

        task = asyncio.get_running_loop().create_task(logged())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    # -- using a session ---------------------------------------------------------------------------
    def find(self, token: str | None, touch: bool = True) -> tuple[ConsoleSession, ApiKey] | None:
        """The live session this cookie token names and its key, or None (and the session is
        forgotten) when it expired or its key was revoked or rotated. ``touch`` counts this as a use."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        digest = token_digest(token)
        session = self._sessions.get(digest)
        if session is None:
            return None
        now = self.clock()
        if now >= session.expires_at(self.idle, self.longest):
            del self._sessions[digest]
            return None
        key = self._current_key(session)
        if key is None:
            del self._sessions[digest]
            return None
        if touch:
            session.last_seen = now
            self.keys.last_used[key.name] = now
            if self._table is not None:
                self._used[digest] = now
        return session, key

    def key_for(self, request: web.Request, token: str) -> ApiKey | web.Response:
        """What the key check asks of a request that came with the cookie and no key: the key it
        stands for, or 401 (no such live session), or 403 (a change without the CSRF token)."""
        found = self.find(token)
        if found is None:
            return error_response(401, SESSION_ENDED)
        session, key = found
        if request.method not in SAFE_METHODS and not change_allowed(request, session):
            return error_response(403, CSRF_REFUSAL)
        return key

    def expires_at(self, session: ConsoleSession) -> float:
        return session.expires_at(self.idle, self.longest)

    def _current_key(self, session: ConsoleSession) -> ApiKey | None:
        self.keys.refresh()  # another process (run_engine.py keys) may have rotated it
        key = self.keys.get(session.key_name)
        if key is None or not hmac.compare_digest(key.sha256, session.key_sha256):
            return None
        return key

    def _drop_expired(self) -> None:
        now = self.clock()
        for digest in [d for d, s in self._sessions.items() if now >= s.expires_at(self.idle, self.longest)]:
            del self._sessions[digest]

    # -- failed sign-ins ---------------------------------------------------------------------------
    def retry_after(self, address: str) -> int | None:
        """Seconds this address must wait before trying again, or None when it may try now."""
        recent = self._recent_failures(address)
        if recent is None or len(recent) < MAX_FAILURES:
            return None
        return max(1, int(recent[0] + FAILURE_WINDOW - self.clock()) + 1)

    def failed(self, address: str) -> None:
        recent = self._recent_failures(address)
        if recent is None:
            while len(self._failures) >= MAX_ADDRESSES:
                self._failures.popitem(last=False)
            recent = self._failures[address] = deque(maxlen=MAX_FAILURES)
        recent.append(self.clock())
        self._failures.move_to_end(address)

    def _recent_failures(self, address: str) -> deque[float] | None:
        recent = self._failures.get(address)
        if recent is None:
            return None
        horizon = self.clock() - FAILURE_WINDOW
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._failures[address]
            return None
        return recent


# -- the rules for a request carrying the cookie ------------------------------------------------------
def csrf_matches(session: ConsoleSession, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                                                         session.csrf.encode())


def forwarded_https(request: web.Request) -> bool:
    """The request reached a TLS proxy in front of the engine (which says so in X-Forwarded-Proto).
    Trusting it can only make the cookie stricter (Secure) or admit the https origin of this host."""
    return request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower() == "https"


def same_origin(request: web.Request) -> bool:
    """No Origin header, or the one of this very host (over http, or https as seen by a proxy)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    schemes = {request.scheme, "https"} if forwarded_https(request) else {request.scheme}
    return origin.rstrip("/").lower() in {f"{scheme}://{request.host}".lower() for scheme in schemes}


def change_allowed(request: web.Request, session: ConsoleSession) -> bool:
    """A changing request made with the cookie comes from the console's own page: it echoes the
    session's CSRF token (which only a page of this origin could read) and names no other origin."""
    return csrf_matches(session, request.headers.get(CSRF_HEADER)) and same_origin(request)


SESSIONS: web.AppKey[SessionStore] = web.AppKey("console_sessions")
