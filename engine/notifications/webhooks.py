"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a receiver checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

# Random bytes for message ids, drawn from the OS in blocks: ``secrets.token_hex`` made a system
# call per message (~3 % of the event loop's time under a notification load). Used from the event
# loop's thread only; a forked child starts with an empty block.
_RANDOM_BLOCK = 4096
_random = bytearray()
os.register_at_fork(after_in_child=_random.clear)


def message_id(prefix: str) -> str:
    """A ``webhook-id``: ``<prefix>_`` and 128 random bits as 32 hex digits."""
    if len(_random) < 16:
        _random[:] = os.urandom(_RANDOM_BLOCK)
    value = _random[-16:].hex()
    del _random[-16:]
    return f"{prefix}_{value}"


def secret_bytes(secret: str) -> bytes:
    """``whsec_<base64>`` as the standard writes secrets; anything else is used as text."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except ValueError:
            pass
    return secret.encode("utf-8")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body)}


def verify(secret: str, msg_id: str, timestamp: str, body: bytes, signature_header: str) -> bool:
    """True when one of the space-separated ``v1,`` signatures matches (for tests and receivers)."""
    expected = sign(secret, msg_id, int(timestamp), body)
    return any(hmac.compare_digest(expected, s) for s in signature_header.split())
