"""What storage raises to its callers (its own module, so every storage module can raise it)."""

from __future__ import annotations


class StorageUnavailable(RuntimeError):
    """A change could not be made durable in time (the database is down, the disk is full):
    the API answers 503 with this message instead of waiting for ever."""
