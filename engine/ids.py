"""Random identifiers: 128 bits from the operating system's CSPRNG, as 32 hex digits.

Callbacks and sessions each take one when they are made; reading the random bytes for 256 ids at
a time spares a system call per id (``secrets.token_hex`` makes one each) at the same strength.
"""

from __future__ import annotations

import os
import zlib

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


#: The database of a cluster is cut into this many partitions for its whole life (a node leases
#: partitions, not single sessions); every id the engine mints falls in one of them.
PARTITIONS = 64
_HEX = frozenset("0123456789abcdefABCDEF")


def partition_of(key: str) -> int:
    """The partition of ``key``: its first four hex digits modulo ``PARTITIONS`` for an id of ours
    (so ``random_id_in`` can place one), a CRC-32 of the whole key for any other string (an
    ordering key, an id a client chose). The stored backfill of the cluster migration computes the
    same on PostgreSQL."""
    head = key[:4]
    if len(head) == 4 and _HEX.issuperset(head):
        return int(head, 16) % PARTITIONS
    return zlib.crc32(key.encode("utf-8")) % PARTITIONS


def random_id_in(partition: int) -> str:
    """A ``random_id`` that falls in ``partition``: its first four hex digits are rounded down to a
    multiple of ``PARTITIONS`` and moved to it, so 122 random bits remain and the format is as ever."""
    if not 0 <= partition < PARTITIONS:
        raise ValueError(f"no partition {partition}")
    value = random_id()
    head = int(value[:4], 16) // PARTITIONS * PARTITIONS + partition
    return f"{head:04x}{value[4:]}"


def partition_of_ordering_key(key: str) -> int:
    """The partition of a notification ordering key (``type|target|tag``, ``fcm|<callback id>``):
    its callback's partition when its tag names one (``callback/<service>/<id>``, or the id
    itself), so a callback's deliveries live where the callback does; one key, one partition."""
    tag = key.rsplit("|", 1)[-1]
    if tag.startswith("callback/"):
        tag = tag.rsplit("/", 1)[-1]
    return partition_of(tag)
