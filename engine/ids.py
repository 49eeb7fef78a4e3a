"""Random identifiers: 128 bits from the operating system's CSPRNG, as 32 hex digits.

Callbacks and sessions each take one when they are made; reading the random bytes for 256 ids at
a time spares a system call per id (``secrets.token_hex`` makes one each) at the same strength.
"""

from __future__ import annotations

import os

_BATCH = 256
_pool: list[str] = []
# A forked child must not hand out the ids its parent still holds.
os.register_at_fork(after_in_child=_pool.clear)


def random_id() -> str:
    """A new id, unguessable like ``uuid4().hex`` (which carries 6 bits fewer)."""
    if not _pool:
        raw = os.urandom(16 * _BATCH).hex()
        _pool.extend(raw[i:i + 32] for i in range(0, len(raw), 32))
    return _pool.pop()
