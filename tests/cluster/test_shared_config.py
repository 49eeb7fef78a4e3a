"""Shared configuration of a cluster (issue 14, item 5): two nodes on one PostgreSQL database, each
with its own configuration folder, its own registries and its own listener, as two engine processes
would have them. A change made through one node is served by the other within a second; a node
restarting with stale files keeps what the API stored; a file edited since its import is taken."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from engine import persistence
from engine.callbacks.callback_settings import CallbackSettings
from engine.callbacks.services import ServiceRegistry
from engine.notifications.notifier import TransactionLists
from engine.runtime import engine_registry
from engine.sessions.flows import FlowRegistry
from engine.storage import StorageUnavailable, Store, config_docs
from engine.storage.config_docs import CHANNEL
from engine.storage.listener import Listener
from engine.storage.shared_config import SharedConfig

REPO = Path(__file__).resolve().parents[2]
HELLO_V2 = (REPO / "scxml" / "hello.scxml").read_text().replace("bonjour", "hello again", 1) + "\n<!-- v2 -->\n"


@dataclass
class Node:
    name: str
    folder: Path
    store: Store
    shared: SharedConfig
    listener: Listener
    lists: TransactionLists
    queue_settings: CallbackSettings
    services: ServiceRegistry
    flows: FlowRegistry

    async def close(self) -> None:
        await self.flows.close()
        await self.listener.close()
        await self.store.close()


def folder_for(tmp_path: Path, name: str) -> Path:
    """A node's own copy of the shipped configuration and flows."""
    folder = tmp_path / name
    if not folder.exists():
        shutil.copytree(REPO / "config", folder / "config")
        shutil.copytree(REPO / "scxml", folder / "scxml")
    return folder


async def start_node(db_url: str, folder: Path, name: str) -> Node:
    """What ``Runtime.build`` and ``start`` do for the shared configuration of a node."""
    store = await persistence.open_store(db_url)
    shared = SharedConfig(store, name)
    listener = Listener(store.engine.url, probe_seconds=1.0)
    listener.subscribe(CHANNEL, shared.on_notice)
    listener.on_reconnect(shared.sweep)
    lists = TransactionLists(folder / "config", shared=shared)
    await lists.open()
    queue_settings = CallbackSettings(folder / "config", shared=shared)
    assert await queue_settings.open() == []
    services = ServiceRegistry(folder / "config", references={
        "_callback_events_list": ("transaction list", lists.names)}, shared=shared)
    await services.open()
    flows = FlowRegistry(folder / "scxml", engine_registry(), store, watch_interval=0, shared=shared)
    await flows.start()
    await listener.start()
    return Node(name, folder, store, shared, listener, lists, queue_settings, services, flows)


@pytest.fixture
def db_url(postgres) -> str:
    return postgres.new_database()


@pytest.fixture
async def nodes(db_url: str, tmp_path: Path) -> AsyncIterator[list[Node]]:
    started = [await start_node(db_url, folder_for(tmp_path, name), name) for name in ("a", "b")]
    yield started
    for node in started:
        await node.close()


async def seen_within(check: Callable[[], bool], seconds: float = 1.0) -> float:
    """How long ``check`` took to hold (it must within ``seconds``)."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < seconds, "not seen in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - began


async def test_the_files_are_imported_once_and_served_by_every_node(nodes: list[Node]) -> None:
    a = nodes[0]
    for node in nodes:
        assert set(node.services.options) == {"callback", "callin", "office-callback"}
        assert set(node.services.hours) == {"office"} and set(node.lists.lists) == {"GMS_Events"}
        assert node.flows.get("callback").version == 1
    docs = await config_docs.read_kind(a.store, "service")
    assert {(d.name, d.revision, d.updated_by) for d in docs} == {(n, 1, "a") for n in ("callback", "callin",
                                                                                     "office-callback")}
    assert all(d.source_hash for d in docs)  # b found the same files: nothing imported twice


async def test_a_change_on_one_node_is_served_by_the_other_within_a_second(nodes: list[Node]) -> None:
    a, b = nodes
    raw = {**a.services.raw["callback"], "_ttl": 4321}
    await a.services.put("callback", raw)
    assert a.services.options["callback"]["_ttl"] == 4321  # saved first, then served here at once
    took = await seen_within(lambda: b.services.options["callback"]["_ttl"] == 4321)
    assert took < 1.0

    hours = {**a.services.raw_hours["office"], "time_zone": "Asia/Tokyo"}
    await b.services.put_hours("office", hours)
    await seen_within(lambda: a.services.raw_hours["office"]["time_zone"] == "Asia/Tokyo")

    text = a.lists.lists["GMS_Events"].text.replace('"name1"', '"changed"')
    assert text != a.lists.lists["GMS_Events"].text
    await a.lists.put("GMS_Events", text)
    await seen_within(lambda: b.lists.lists["GMS_Events"].text == text)

    await b.queue_settings.put("VQ_Sales", {"max_dial_attempts": 7})
    await seen_within(lambda: a.queue_settings.dial_options("VQ_Sales") == {"_max_dial_attempts": 7})
    # nothing was written to either node's folder: the database is where a cluster keeps them
    for node in nodes:
        assert json.loads((node.folder / "config/services/callback.json").read_text()).get("_ttl") != 4321
        assert not (node.folder / "config/callback-settings").exists()


async def test_a_stale_file_on_a_restarting_node_does_not_undo_an_api_change(
        nodes: list[Node], db_url: str) -> None:
    a, b = nodes
    await a.services.put("callback", {**a.services.raw["callback"], "_ttl": 999})
    await b.flows.add("hello", HELLO_V2, write_file=True)
    await seen_within(lambda: a.flows.get("hello").version == 2)
    await b.close()

    b = nodes[1] = await start_node(db_url, b.folder, "b")  # its files are those of before the changes
    assert b.services.options["callback"]["_ttl"] == 999
    assert b.flows.get("hello").version == 2
    assert (await config_docs.read(a.store, "service", "callback")).revision == 2  # nothing imported

    # A file edited since its import is taken at the next start, and every node serves it.
    path = b.folder / "config/services/callback.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "_ttl": 555}))
    await b.close()
    b = nodes[1] = await start_node(db_url, b.folder, "b")
    assert b.services.options["callback"]["_ttl"] == 555
    await seen_within(lambda: a.services.options["callback"]["_ttl"] == 555)


async def test_a_flow_uploaded_on_one_node_starts_new_sessions_there_and_on_the_other(nodes: list[Node]) -> None:
    a, b = nodes
    v1 = b.flows.get("hello")
    fv = await a.flows.add("hello", HELLO_V2, write_file=True)
    assert fv.version == 2 and a.flows.get("hello") is fv
    await seen_within(lambda: b.flows.get("hello").version == 2)
    assert b.flows.get("hello").hash == fv.hash  # new sessions start on v2 there too
    assert b.flows.document(v1.hash) is v1.doc  # sessions running v1 keep running it
    assert "hello again" not in (a.folder / "scxml/hello.scxml").read_text()  # no file written
    # The same document again is the same version; an upload on each node at once gets two numbers.
    assert (await b.flows.add("hello", HELLO_V2, write_file=True)).version == 2
    three, four = await asyncio.gather(a.flows.add("hello", HELLO_V2 + "<!-- 3 -->", write_file=True),
                                       b.flows.add("hello", HELLO_V2 + "<!-- 4 -->", write_file=True))
    assert {three.version, four.version} == {3, 4}
    await seen_within(lambda: a.flows.get("hello").hash == b.flows.get("hello").hash)


async def test_a_document_this_node_refuses_is_logged_and_the_old_one_kept(
        nodes: list[Node], caplog: pytest.LogCaptureFixture) -> None:
    a, b = nodes
    before = b.services.options["callback"]
    with caplog.at_level(logging.ERROR, logger="engine.callbacks"):
        await config_docs.save(a.store, "service", "callback", '{"_business_hours_service": "nowhere"}', "a")
        await seen_within(lambda: any("refused here" in r.getMessage() for r in caplog.records))
    assert b.services.options["callback"] is before


async def test_what_was_missed_while_not_listening_is_read_by_the_sweep(nodes: list[Node]) -> None:
    a, b = nodes
    await b.listener.close()
    await a.services.put("callin", {**a.services.raw["callin"], "_ttl": 77})
    await asyncio.sleep(0.2)
    assert b.services.options["callin"]["_ttl"] != 77
    await b.shared.sweep()  # what the listener runs once connected again
    assert b.services.options["callin"]["_ttl"] == 77


async def test_a_write_the_database_refuses_is_503_and_changes_nothing(nodes: list[Node]) -> None:
    a, _ = nodes
    gone = Store(create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none"))
    services = ServiceRegistry(a.folder / "config", shared=SharedConfig(gone, "a"))
    services.hours = dict(a.services.hours)
    with pytest.raises(StorageUnavailable, match="could not save service 'callback'"):
        await services.put("callback", {"_ttl": 5})
    assert "callback" not in services.options
    await gone.close()
