"""Errors of the SCXML engine: load-time problems and run-time failures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document, located so an author can find it.

    ``deferred`` problems are the ones the W3C standard wants reported at run
    time as ``error.execution`` (an expression that does not compile, a send
    type nobody handles); strict loading refuses them too.

    ``limit`` problems break no rule of the standard: the document goes beyond a
    bound this engine sets to keep one session from holding the event loop. A
    version stored before the bound existed is still compiled (``limits=False``)
    so the sessions already running on it are not lost at a restart.
    """

    source: str
    line: int
    column: int
    message: str
    deferred: bool = False
    limit: bool = False

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.message}"


class DocumentError(Exception):
    """A document that cannot be loaded; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ExecutionError(Exception):
    """Raised inside executable content; becomes an ``error.execution`` event, carrying the id of
    the ``<send>`` that failed when a send did (W3C 5.10.1: ``_event.sendid``)."""

    sendid: str | None = None


class CommunicationError(Exception):
    """A send that could not be dispatched; becomes ``error.communication``."""


class SessionLimitError(Exception):
    """A runaway document hit a guard (microsteps per macrostep, invoke depth)."""
