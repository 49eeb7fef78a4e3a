"""A stand-in for the session manager a dispatcher is built with, for tests that store nothing."""

from __future__ import annotations

from typing import Any


class Host:
    """What a dispatcher needs of the session manager here: nothing is stored."""

    store = None
    cluster = None

    def __init__(self) -> None:
        self.batch_contributors: list[Any] = []
        self.after_commit: list[Any] = []

    def request_write(self) -> None:
        pass
