"""An engine whose services notify a real loopback receiver."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.app import create_app
from engine.settings import Settings
from tests.callbacks.conftest import LOOPBACK_ALLOWED, write_config
from tests.conftest import REPO, SHARED
from tests.support.engine_process import free_port
from tests.support.receiver import Receiver

SEED = SHARED / "seeds" / "000_e632c6894d64fa52.txt"


def seed_events_cfg() -> str:
    """The seed's own GMS_Events.cfg sample, cut out of the document verbatim."""
    text = SEED.read_text()
    m = re.search(r"```\n(\[properties\].*?)```", text, re.S)
    assert m, "the seed's GMS_Events.cfg sample was not found"
    return m.group(1)


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
def make_engine(aiohttp_client, tmp_path):
    """``await make_engine(services={...}, lists={...}, notifications={...})``."""
    async def make(services: dict, lists: dict | None = None, notifications: dict | None = None):
        config = write_config(tmp_path)
        for name, options in services.items():
            (config / "services" / f"{name}.json").write_text(json.dumps(options))
        (config / "transaction-lists").mkdir(exist_ok=True)
        for name, text in (lists or {}).items():
            (config / "transaction-lists" / f"{name}.cfg").write_text(text)
        if notifications:
            (config / "notifications.json").write_text(json.dumps({**LOOPBACK_ALLOWED, **notifications}))
        port = free_port()
        settings = Settings.load(config_dir=config, env={}, data_dir=tmp_path / "data",
                                 flows_dir=_flows(tmp_path), admin_key="admin-key", client_key="client-key",
                                 flow_watch_interval=0, port=port)
        return await aiohttp_client(create_app(settings), server_kwargs={"port": port})

    return make


def _flows(tmp_path: Path) -> Path:
    flows = tmp_path / "flows"
    if not flows.exists():
        flows.mkdir()
        (flows / "callback.scxml").write_text((REPO / "scxml" / "callback.scxml").read_text())
        (flows / "monitor.scxml").write_text(MONITOR)
    return flows


MONITOR = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="watching">
<datamodel><data id="seen" expr="[]"/></datamodel>
<state id="watching">
  <transition event="*"><assign location="seen" expr="seen + [dict(_event.data)]"/></transition>
</state></scxml>"""
