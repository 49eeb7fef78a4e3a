"""A cluster's keys, console sign-ins and configuration from the command line (issue 14, item 5):
``run_engine.py keys`` writes the database's keys, which every node serves at once; a console
sign-in made on one node is valid on the other (a sign-out, a rotated key end it on both; last
uses are exchanged; a restarted node keeps them); ``config export`` then ``config import`` changes
nothing, and a file edited in between is taken by every node."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import persistence
from engine.console import session as console_session
from engine.console.session import SessionStore
from engine.keys import KeyStore, make_key
from engine.roles import ADMINISTRATOR
from engine.storage import config_docs
from engine.storage.api_keys import KIND as KEYS_KIND
from engine.storage.api_keys import KeyTable
from engine.storage.config_docs import CHANNEL
from engine.storage.console_sessions import KIND as SIGN_IN_KIND
from engine.storage.console_sessions import SignInTable
from engine.storage.listener import Listener
from engine.storage.shared_config import SharedConfig

from .test_shared_config import REPO, Node, folder_for, seen_within, start_node


def run_engine(db_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLBACK_ENGINE_DATABASE_URL": db_url, "CALLBACK_ENGINE_CONFIG_DIR": str(REPO / "config")}
    return subprocess.run([sys.executable, str(REPO / "run_engine.py"), args[0], "--data", str(tmp_path / "cli-data"),
                           *args[1:]],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture
def db_url(postgres) -> str:
    return postgres.new_database()


class KeyNode:
    """What ``create_app`` does with the keys of a cluster node."""

    def __init__(self, keys: KeyStore, listener: Listener, store, shared: SharedConfig) -> None:
        self.keys, self.listener, self.store, self.shared = keys, listener, store, shared

    @classmethod
    async def start(cls, db_url: str, data: Path, name: str) -> KeyNode:
        store = await persistence.open_store(db_url)
        shared = SharedConfig(store, name)
        listener = Listener(store.engine.url, probe_seconds=1.0)
        listener.subscribe(CHANNEL, shared.on_notice)
        keys = KeyStore(data / "keys.json")
        await keys.share(KeyTable(shared))
        shared.follow(KEYS_KIND, keys.reread, versioned=False)
        await listener.start()
        return cls(keys, listener, store, shared)

    async def close(self) -> None:
        await self.listener.close()
        await self.store.close()


@pytest.fixture
async def key_nodes(db_url: str, tmp_path: Path) -> AsyncIterator[list[KeyNode]]:
    # The first node's file has a key from before the cluster: it becomes the cluster's.
    first = KeyStore(tmp_path / "a" / "keys.json")
    first.create("old-admin", ADMINISTRATOR)
    started = [await KeyNode.start(db_url, tmp_path / name, name) for name in ("a", "b")]
    yield started
    for node in started:
        await node.close()


async def test_a_key_made_by_the_command_works_on_every_node_and_a_revocation_too(
        key_nodes: list[KeyNode], db_url: str, tmp_path: Path) -> None:
    a, b = key_nodes
    assert [k.name for k in b.keys.keys] == ["old-admin"]  # brought by the first node
    made = await asyncio.to_thread(run_engine, db_url, tmp_path, "keys", "create", "--role", "client",
                                   "--name", "from-cli")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    for node in key_nodes:
        await seen_within(lambda node=node: node.keys.authenticate(secret) is not None)
        assert node.keys.authenticate(secret).name == "from-cli"
    assert not (tmp_path / "cli-data" / "keys.json").exists()  # the database's, not a file's

    # Revoked through one node (as the API does it: in a worker thread): refused on the other.
    await asyncio.to_thread(a.keys.revoke, "from-cli")
    await seen_within(lambda: b.keys.authenticate(secret) is None)
    listed = await asyncio.to_thread(run_engine, db_url, tmp_path, "keys", "list")
    assert "old-admin" in listed.stdout and "from-cli" not in listed.stdout


async def test_a_key_name_is_taken_cluster_wide_and_the_last_administrator_stays(
        key_nodes: list[KeyNode]) -> None:
    from engine.keys import KeyRequestError

    a, b = key_nodes
    await asyncio.to_thread(a.keys.create, "app", "client")
    with pytest.raises(KeyRequestError) as taken:  # b builds on the table as it is, not on its memory
        await asyncio.to_thread(b.keys.create, "app", "client")
    assert taken.value.status == 409
    with pytest.raises(KeyRequestError) as last:
        await asyncio.to_thread(b.keys.revoke, "old-admin")
    assert last.value.status == 409
    rows = await KeyTable(SharedConfig(a.store, "t")).read()
    assert sorted(r["name"] for r in rows) == ["app", "old-admin"]
    assert make_key("x", "client", "s").row().keys() == rows[0].keys()  # the same columns as a file's entry


async def test_an_export_imported_again_changes_nothing_and_an_edited_file_is_served(
        db_url: str, tmp_path: Path) -> None:
    node: Node = await start_node(db_url, folder_for(tmp_path, "a"), "a")
    try:
        await node.services.put("callin", {**node.services.raw["callin"], "_ttl": 1234})
        await node.flows.add("hello", (REPO / "scxml/hello.scxml").read_text() + "<!-- v2 -->", write_file=True)
        before = await config_docs.revisions(node.store)
        out = tmp_path / "export"
        done = await asyncio.to_thread(run_engine, db_url, tmp_path, "config", "export", str(out), "--all-versions")
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in (out / "services").iterdir()) == ["callback.json", "callin.json",
                                                                        "office-callback.json"]
        assert "<!-- v2 -->" in (out / "scxml/hello.scxml").read_text()
        assert (out / "scxml/versions/hello.v1.scxml").is_file()
        done = await asyncio.to_thread(run_engine, db_url, tmp_path, "config", "import", str(out))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("imported 0 changed documents")
        assert await config_docs.revisions(node.store) == before

        path = out / "business-hours" / "office.json"
        path.write_text(path.read_text().replace('"time_zone": "Europe/Paris"', '"time_zone": "America/New_York"'))
        done = await asyncio.to_thread(run_engine, db_url, tmp_path, "config", "import", str(out))
        assert done.returncode == 0, done.stderr
        assert "business_hours office" in done.stdout
        await seen_within(lambda: node.services.raw_hours["office"]["time_zone"] == "America/New_York")
    finally:
        await node.close()


# -- console sign-ins ---------------------------------------------------------------------------
IDLE, LONGEST = 1800.0, 3600.0


async def console_of(node: KeyNode) -> SessionStore:
    """What ``create_app`` does with the console's sign-ins of a cluster node."""
    sessions = SessionStore(node.keys, IDLE, LONGEST)
    await sessions.share(SignInTable(node.shared))
    node.shared.follow(SIGN_IN_KIND, sessions.reread, versioned=False)
    return sessions


@pytest.fixture
async def consoles(key_nodes: list[KeyNode], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[SessionStore]]:
    monkeypatch.setattr(console_session, "EXCHANGE_SECONDS", 0.2)
    made = [await console_of(node) for node in key_nodes]
    yield made
    for sessions in made:
        await sessions.close()


async def test_a_sign_in_on_one_node_is_valid_on_the_other_until_signed_out(
        key_nodes: list[KeyNode], consoles: list[SessionStore]) -> None:
    a, b = consoles
    key, _secret = await asyncio.to_thread(key_nodes[0].keys.create, "ops", ADMINISTRATOR)
    await seen_within(lambda: key_nodes[1].keys.get("ops") is not None)
    token, session = a.sign_in(key)
    await seen_within(lambda: b.find(token) is not None)
    found, found_key = b.find(token)
    assert (found.csrf, found_key.name) == (session.csrf, "ops")
    b.sign_out(token)
    assert b.find(token) is None
    await seen_within(lambda: a.find(token) is None)


async def test_a_rotated_key_ends_its_sign_ins_everywhere_and_a_restart_keeps_them(
        key_nodes: list[KeyNode], consoles: list[SessionStore]) -> None:
    a, b = consoles
    key, _ = await asyncio.to_thread(key_nodes[0].keys.create, "ops", ADMINISTRATOR)
    other, _ = await asyncio.to_thread(key_nodes[0].keys.create, "dev", "developer")
    token, _ = a.sign_in(key)
    kept, _ = a.sign_in(other)
    await seen_within(lambda: b.find(token) is not None and b.find(kept) is not None)

    restarted = await console_of(key_nodes[1])  # a node starting again reads the live sign-ins
    try:
        assert restarted.find(kept) is not None
    finally:
        await restarted.close()

    await asyncio.to_thread(key_nodes[0].keys.rotate, "ops")
    await seen_within(lambda: b.find(token) is None)
    assert b.find(kept) is not None


async def test_a_session_used_on_one_node_is_not_idle_on_the_other(
        key_nodes: list[KeyNode], consoles: list[SessionStore]) -> None:
    a, b = consoles
    key, _ = await asyncio.to_thread(key_nodes[0].keys.create, "ops", ADMINISTRATOR)
    token, _ = a.sign_in(key)
    await seen_within(lambda: b.find(token, touch=False) is not None)
    before = b.find(token, touch=False)[0].last_seen
    await asyncio.sleep(0.05)
    a.find(token)  # used on a
    await seen_within(lambda: b.find(token, touch=False)[0].last_seen > before, seconds=2.0)


def test_the_exchange_interval_keeps_idle_limits_honest() -> None:
    """Last uses travel every EXCHANGE_SECONDS: far below the shortest idle limit anyone sets."""
    assert console_session.EXCHANGE_SECONDS * 4 <= 60



async def test_nodes_of_a_new_cluster_starting_together_make_one_administrator_key(
        db_url: str, tmp_path: Path) -> None:
    nodes = [await KeyNode.start(db_url, tmp_path / name, name) for name in ("a", "b", "c")]
    try:
        made = await asyncio.gather(*(asyncio.to_thread(n.keys.ensure_administrator, tmp_path / str(i))
                                      for i, n in enumerate(nodes)))
        assert sum(path is not None for path in made) == 1  # one initial-admin-key file, by one node
        rows = await KeyTable(nodes[0].shared).read()
        assert [r["role"] for r in rows] == [ADMINISTRATOR]
    finally:
        for node in nodes:
            await node.close()
