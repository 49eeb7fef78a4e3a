"""The platform link's shared secret (``platform_key``): how a node proves it to the platform
process, and how the platform proves it back.

The key itself never crosses the wire. A node signs each request (the WebSocket handshake, an
admin call it proxies) with ``Authorization: CBE-HMAC ts=..,nonce=..,mac=..``, the MAC over the
method, path, wall-clock time and a fresh nonce; the platform accepts it within ``WINDOW``
seconds of its own clock and only once (a captured header cannot be replayed). The platform
answers with a proof over the same nonce (in the WebSocket's ``welcome``, or the
``X-CBE-Platform-Proof`` header of an HTTP answer): something listening at ``platform_url``
that does not hold the key is not believed, and it learns nothing it could present elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

SCHEME = "CBE-HMAC"
PROOF_HEADER = "X-CBE-Platform-Proof"
WINDOW = 300.0  # seconds a signed request is valid either side of the platform's clock
SETTING = "platform_key (CALLBACK_ENGINE_PLATFORM_KEY or CALLBACK_ENGINE_PLATFORM_KEY_FILE)"

_HEADER = re.compile(rf"{SCHEME} ts=(\d{{1,12}}),nonce=([0-9a-f]{{32}}),mac=([0-9a-f]{{64}})")


def _mac(key: str, text: str) -> str:
    return hmac.new(key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(key: str, method: str, path: str, now: float | None = None) -> tuple[str, str]:
    """An ``Authorization`` value for one request, and its nonce (the platform's proof covers it)."""
    ts = int(time.time() if now is None else now)
    nonce = secrets.token_hex(16)
    return f"{SCHEME} ts={ts},nonce={nonce},mac={_mac(key, f'node|{method}|{path}|{ts}|{nonce}')}", nonce


def proof(key: str, nonce: str) -> str:
    """The platform's answer to a request signed with ``nonce``: it holds the key too."""
    return _mac(key, f"platform|{nonce}")


def proof_ok(key: str, nonce: str, presented: object) -> bool:
    return isinstance(presented, str) and hmac.compare_digest(proof(key, nonce), presented)


class Refused(Exception):
    """A request without a valid signature; the message is safe to answer and to log."""


class Verifier:
    """The platform's check of signed requests; remembers the nonces it accepted (only ones
    signed with the key, so only the key's holders can grow it) until they expire."""

    def __init__(self, key: str, window: float = WINDOW):
        self.key = key
        self.window = window
        self._seen: dict[str, float] = {}  # nonce -> when it expires (wall clock)

    def check(self, header: str | None, method: str, path: str, now: float | None = None) -> str:
        """The request's nonce when ``header`` signs it; ``Refused`` otherwise."""
        now = time.time() if now is None else now
        found = _HEADER.fullmatch(header or "")
        if found is None:
            raise Refused("platform key required")
        ts, nonce, mac = found.groups()
        if not hmac.compare_digest(_mac(self.key, f"node|{method}|{path}|{ts}|{nonce}"), mac):
            raise Refused("platform key required")
        # Signed with the key: what follows may say more, it is a node talking.
        if abs(now - int(ts)) > self.window:
            raise Refused(f"signature time {int(ts) - now:+.0f} s from the platform's clock (more than "
                          f"{self.window:g} s): set the clocks of the nodes and the platform right")
        for old in [n for n, until in self._seen.items() if until < now]:
            del self._seen[old]
        if nonce in self._seen:
            raise Refused("this signed request was seen before (a replay)")
        self._seen[nonce] = int(ts) + self.window
        return nonce
