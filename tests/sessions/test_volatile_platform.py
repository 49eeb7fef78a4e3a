"""An in-process platform does not outlive the process, so its traffic is not stored.

Requests to it go out as the flow sends them, without waiting for the commit of the macrostep,
and with no outbox row to redo them from; its events go to their sessions with no inbox row;
after a restart the flows hear ``platform.restarted`` instead. What goes to a durable party (a
Basic HTTP send) is still stored.
"""

from __future__ import annotations

from pathlib import Path

from engine.callbacks.vocabulary import CallbackState, CompletionReason
from engine.runtime import Runtime
from engine.sessions import rows as session_rows
from engine.settings import Settings
from engine.storage import UnitOfWork
from tests.callbacks.conftest import write_config
from tests.conftest import REPO
from tests.support.eventually import eventually


async def test_a_callback_through_the_simulator_stores_no_inbox_or_outbox_rows(tmp_path: Path) -> None:
    settings = Settings.load(config_dir=write_config(tmp_path), env={}, data_dir=tmp_path / "data",
                             flows_dir=REPO / "scxml", flow_watch_interval=0)
    runtime = await Runtime.build(settings)
    assert runtime.store is not None and runtime.simulator.durable is False
    written: list[UnitOfWork] = []
    write = runtime.store.write

    async def recording(unit: UnitOfWork) -> None:
        written.append(unit)
        await write(unit)

    runtime.store.write = recording  # type: ignore[method-assign]
    await runtime.start()
    try:
        record = await runtime.callbacks.create("callback", {"_customer_number": "+15550019999"})
        await eventually(lambda: record["_callback_state"] == CallbackState.COMPLETED, timeout=15,
                         expected="the callback completed")
        assert record.get("_callback_reason") == CompletionReason.AGENT_CONNECTED
        snapshots = sum(len(u.upserts.get(session_rows.SESSIONS, ())) for u in written)
        inbox = sum(len(u.upserts.get(session_rows.INBOX, ())) for u in written)
        outbox = sum(len(u.upserts.get(session_rows.OUTBOX, ())) for u in written)
        assert snapshots >= 3  # the flow's progress is stored as before...
        assert (inbox, outbox) == (0, 0)  # ...and nothing of the simulator's traffic
    finally:
        await runtime.close()
