"""Run one document to completion: the ``run`` command and the conformance tests use this."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .host import Limits, SessionHost
from .model import Document
from .registry import Registry
from .session import FINISHED


@dataclass
class Outcome:
    """How a run ended: ``passed`` means a top-level final state with id ``pass``."""

    status: str
    final_state: str | None
    configuration: list[str]
    error: str | None = None
    timed_out: bool = False
    data: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == FINISHED and self.final_state == "pass"

    @property
    def exit_code(self) -> int:
        if self.timed_out or self.error or self.status != FINISHED:
            return 2
        return 0 if self.final_state == "pass" else 1


async def run_to_completion(
    doc: Document,
    *,
    timeout: float = 30.0,
    registry: Registry | None = None,
    limits: Limits | None = None,
    http: bool = True,
) -> Outcome:
    """Start a session of ``doc`` in a fresh host and wait until it ends or ``timeout``."""
    host = SessionHost(registry=registry, limits=limits)
    if http:
        await host.start()
    ended: asyncio.Future = asyncio.get_running_loop().create_future()
    try:
        session = host.create_session(doc)

        def on_end(s: object) -> None:
            if s is session and not ended.done():
                ended.set_result(None)

        host.on_session_end.append(on_end)
        session.start()
        timed_out = False
        if session.is_running:
            try:
                await asyncio.wait_for(asyncio.shield(ended), timeout)
            except TimeoutError:
                timed_out = True
        return Outcome(
            status=session.status,
            final_state=session.final_state,
            configuration=session.active_state_ids(),
            error=session.error or (f"timed out after {timeout:.1f} s" if timed_out else None),
            timed_out=timed_out,
            data=session.variables,
        )
    finally:
        await host.close()
