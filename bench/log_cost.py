"""Micro-benchmark: the engine CPU one callback's log lines cost, flushes included.

Run from a clone's root as ``python bench/log_cost.py`` (``--level WARNING`` for the floor: the
same events with no line written). The real lifecycle log (``engine/observability/lifecycle.py``)
and the engine's own handler (``setup_logging``, into a real file) see what one callback makes:
its creation with its create request's access line, four state changes, its session's start and
end and its completion, each in an event-loop turn of its own as in the engine. The events come
from stand-ins, not from a running engine: only the logging is timed.

Prints one JSON object: microseconds of this thread's CPU per callback (the median of
``--rounds`` rounds) and the lines written. To compare two revisions, copy it to the other clone
or run it with that clone as the working folder (it imports ``engine`` from there), alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, os.getcwd())  # the clone to measure

from engine.callbacks.bus import CallbackCompleted, CallbackCreated, StatusEvent
from engine.callbacks.lifecycle import STATUS_UPDATED_EVENT
from engine.logs import info_line, setup_logging
from engine.observability.lifecycle import LifecycleLog

ACCESS = {"method": "POST", "route": "/genesys/1/service/callback/{service}", "status": 200, "ms": 0.31,
          "key": "env-client"}


class _Bus:
    """The callback bus's subscribe and publish, nothing else."""

    def __init__(self) -> None:
        self.handlers: dict[type, list[Callable[[Any], None]]] = {}

    def subscribe(self, kind: type, handler: Callable[[Any], None]) -> None:
        self.handlers.setdefault(kind, []).append(handler)

    def publish(self, event: Any) -> None:
        for handler in self.handlers.get(type(event), ()):
            handler(event)


class _Data:
    """A session's datamodel as the lifecycle log reads it."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def defines(self, name: str) -> bool:
        return name in self.values

    def variable(self, name: str) -> Any:
        return self.values.get(name)

    def lookup(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


async def _callbacks(bus: _Bus, manager: Any, access: logging.Logger, count: int) -> float:
    started = time.thread_time()
    for i in range(count):
        cid = f"cb{i:08d}"
        sid = "s" + cid
        record: dict[str, Any] = {"_id": cid, "_service_name": "bench", "_desired_time": 1.0,
                                  "_callback_state": "SCHEDULED"}
        bus.publish(CallbackCreated(record))
        info_line(access, "request", ACCESS)
        await asyncio.sleep(0)
        record["_callback_state"] = "QUEUED"
        bus.publish(StatusEvent(record, STATUS_UPDATED_EVENT, {}, None))
        await asyncio.sleep(0)
        data = {"_service_id": cid, "_service_name": "bench"}
        session = SimpleNamespace(id=sid, status="running", final_state=None, error=None, datamodel=_Data(data))
        for started_hook in manager.on_session_start:
            started_hook(session, "callback", data)
        await asyncio.sleep(0)
        for state in ("ROUTING", "PROCESSING"):
            record["_callback_state"] = state
            bus.publish(StatusEvent(record, STATUS_UPDATED_EVENT, {}, sid))
            await asyncio.sleep(0)
        record["_callback_state"], record["_ors_session_id"] = "COMPLETED", sid
        bus.publish(CallbackCompleted(record, "AGENT_CONNECTED"))
        await asyncio.sleep(0)
        session.status, session.final_state = "completed", "done"
        for ended_hook in manager.on_session_end:
            ended_hook(session)
        await asyncio.sleep(0)
    return (time.thread_time() - started) / count


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "engine.log"
        with open(path, "w", buffering=1 << 16, encoding="utf-8") as stream:
            setup_logging(args.level, "text", stream)
            bus, manager = _Bus(), SimpleNamespace(on_session_start=[], on_session_end=[])
            LifecycleLog(manager=manager, callbacks=SimpleNamespace(records={}), bus=bus,  # type: ignore[arg-type]
                         dispatcher=SimpleNamespace(on_delivered=[]))
            access = logging.getLogger("engine.access")
            await _callbacks(bus, manager, access, args.callbacks)  # warm-up
            rounds = [await _callbacks(bus, manager, access, args.callbacks) for _ in range(args.rounds)]
            root = logging.getLogger()
            for handler in list(root.handlers):  # none may outlive the file (logging flushes them at exit)
                handler.flush()
                root.removeHandler(handler)
        lines = len(path.read_text().splitlines())
    return {"us_per_callback": round(statistics.median(rounds) * 1e6, 2), "lines": lines, "level": args.level}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=300, help="callbacks per round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--level", default="INFO")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
