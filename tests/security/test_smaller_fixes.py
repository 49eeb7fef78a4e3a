"""Issue 9 item 12 (parts): an unclosed transaction-list header is refused with its line; a service
naming an unknown transaction list or virtual queue is refused naming the option (and one in
``config/`` still loads, loudly); a refused flow upload leaves no entry and no file."""

from __future__ import annotations

import json
import logging

import pytest

from engine.api.appkeys import RUNTIME
from engine.app import create_app
from engine.settings import Settings
from tests.api.conftest import ADMIN as API_ADMIN
from tests.api.conftest import engine_client  # noqa: F401 - fixture
from tests.callbacks.conftest import ADMIN, cb_client, write_config  # noqa: F401 - fixture
from tests.conftest import REPO
from tests.support.engine_process import free_port
from tests.support.eventually import eventually

LIST = "[properties]\n_enable_status_notification = notify\n{header}\nnotify_params = _id\n"


@pytest.mark.parametrize(("header", "problem"), [
    ("[_cbe_on_dial_init", "is not closed with ']'"),
    ("[_cbe_on_dial_init] notify_params = _id", "must be '[name]' alone on its line"),
])
async def test_an_unclosed_section_header_is_refused_with_its_line(cb_client, header, problem):  # noqa: F811
    r = await cb_client.put("/admin/transaction-lists/broken", data=LIST.format(header=header), headers=ADMIN)
    body = await r.json()
    assert r.status == 400, body
    assert body["line"] == 3 and body["section"] is None
    assert body["message"] == f"transaction list refused: line 3: section header {header[:40]!r} {problem}"
    assert (await cb_client.get("/admin/transaction-lists/broken", headers=ADMIN)).status == 404
    r = await cb_client.put("/admin/transaction-lists/fine", data=LIST.format(header="[_cbe_on_dial_init]"),
                            headers=ADMIN)
    assert r.status == 200 and (await r.json())["events"] == ["_cbe_on_dial_init"]


@pytest.mark.parametrize(("option", "value", "kind", "known"), [
    ("_callback_events_list", "Nope", "transaction list", "none"),
    ("_urs_virtual_queue", "Nope_VQ", "virtual queue", "Callback_VQ, Empty_VQ"),
])
async def test_a_service_naming_something_unknown_is_refused(cb_client, option, value, kind, known):  # noqa: F811
    r = await cb_client.put("/admin/services/named", json={"_service": "callback", option: value}, headers=ADMIN)
    body = await r.json()
    assert r.status == 400, body
    assert body["message"] == f"service 'named' refused: {option} {value!r} is not a known {kind} (known: {known})"
    assert (await cb_client.get("/admin/services/named", headers=ADMIN)).status == 404
    assert "named" not in (await (await cb_client.get("/admin/services", headers=ADMIN)).json())["services"]


async def test_a_service_naming_what_exists_is_accepted(cb_client):  # noqa: F811
    r = await cb_client.put("/admin/transaction-lists/Mine", data=LIST.format(header="[_cbe_on_dial_init]"),
                            headers=ADMIN)
    assert r.status == 200
    r = await cb_client.put("/admin/services/named", headers=ADMIN, json={
        "_service": "callback", "_callback_events_list": "Mine", "_urs_virtual_queue": "Empty_VQ"})
    assert r.status == 200, await r.json()
    # a queue added to the simulator can be named at once
    sim = (await (await cb_client.get("/admin/simulator", headers=ADMIN)).json())["config"]
    sim["queues"]["New_VQ"] = {"agents": 1, "handle_seconds": 60, "handle_jitter": 0}
    assert (await cb_client.put("/admin/simulator", json=sim, headers=ADMIN)).status == 200
    r = await cb_client.put("/admin/services/named", json={"_service": "callback", "_urs_virtual_queue": "New_VQ"},
                            headers=ADMIN)
    assert r.status == 200, await r.json()


async def test_a_config_file_naming_something_missing_still_loads(aiohttp_client, tmp_path, caplog):
    config = write_config(tmp_path)
    (config / "services" / "dangling.json").write_text(json.dumps(
        {"_service": "callback", "_callback_events_list": "Gone", "_urs_virtual_queue": "Gone_VQ"}))
    port = free_port()
    settings = Settings.load(config_dir=config, env={}, data_dir=tmp_path / "data", flows_dir=REPO / "scxml",
                             admin_key="admin-key", client_key="client-key", flow_watch_interval=0, port=port)
    with caplog.at_level(logging.ERROR, logger="engine.callbacks"):
        client = await aiohttp_client(create_app(settings), server_kwargs={"port": port})
    r = await client.get("/admin/services/dangling", headers=ADMIN)
    assert r.status == 200  # its callbacks stay reachable
    logged = [rec.getMessage() for rec in caplog.records if "dangling.json" in rec.getMessage()]
    assert any("_callback_events_list 'Gone' is not a known transaction list" in m for m in logged), logged
    assert any("_urs_virtual_queue 'Gone_VQ' is not a known virtual queue" in m for m in logged), logged


BAD_FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" initial="a">
<state id="a"><transition target="nowhere"/></state></scxml>"""


async def test_a_refused_flow_upload_leaves_no_entry_and_no_file(engine_client):  # noqa: F811
    client = await engine_client()
    r = await client.put("/admin/flows/newcomer", data=BAD_FLOW, headers=API_ADMIN)
    assert r.status == 400 and (await r.json())["exception"] == "InvalidFlow"
    listed = await (await client.get("/admin/flows", headers=API_ADMIN)).json()
    assert "newcomer" not in listed["flows"]
    assert (await client.get("/admin/flows/newcomer", headers=API_ADMIN)).status == 404
    folder = client.app[RUNTIME].flows.folder
    assert not (folder / "newcomer.scxml").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    # a broken file in the folder is listed while it is there, and not after it is gone
    (folder / "dropped.scxml").write_text(BAD_FLOW)

    async def listed() -> list[str]:
        return (await (await client.get("/admin/flows", headers=API_ADMIN)).json())["flows"]

    await eventually(listed, lambda flows: "dropped" in flows, timeout=6, expected="'dropped' listed")
    assert (await (await client.get("/admin/flows/dropped", headers=API_ADMIN)).json())["refused"]
    (folder / "dropped.scxml").unlink()
    await eventually(listed, lambda flows: "dropped" not in flows, timeout=6, expected="'dropped' gone")
    assert "dropped" not in (await (await client.get("/admin/flows", headers=API_ADMIN)).json())["flows"]
