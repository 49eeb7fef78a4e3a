"""Issue 9 item 6 and the smaller key findings: named keys (created, listed without their secret,
rotated, revoked) stored hashed, the five roles against every area, client keys scoped to
services, the two 401 answers, keys from the environment removed from it."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import ClientSession

from engine.app import create_app
from engine.settings import Settings
from tests.callbacks.conftest import create, record, write_config
from tests.conftest import REPO
from tests.support.engine_process import ADMIN_KEY, CLIENT_KEY, EngineProcess, free_port
from tests.support.eventually import eventually

ADMIN = {"x-api-key": "admin-key"}
CB = "/genesys/1/service/callback"
ROLES = ("administrator", "supervisor", "monitor", "developer", "client")
# Real time, and no agents: callbacks wait QUEUED for as long as a test needs them.
SIMULATOR = """
time_scale = 1
[queues.Callback_VQ]
agents = 0
handle_seconds = 60
[queues.Empty_VQ]
agents = 0
handle_seconds = 60
"""


def settings_for(tmp_path: Path, port: int, **kw) -> Settings:
    config = write_config(tmp_path)
    (config / "simulator.toml").write_text(SIMULATOR)
    base = {"admin_key": "admin-key", "client_key": "client-key"}
    base.update(kw)
    return Settings.load(config_dir=config, env={}, data_dir=tmp_path / "data", flows_dir=REPO / "scxml",
                         flow_watch_interval=0, port=port, **base)


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    port = free_port()
    return await aiohttp_client(create_app(settings_for(tmp_path, port)), server_kwargs={"port": port})


async def new_key(client, name: str, role: str, services: list[str] | None = None) -> dict[str, str]:
    body = {"name": name, "role": role, **({"services": services} if services else {})}
    r = await client.post("/admin/keys", json=body, headers=ADMIN)
    answer = await r.json()
    assert r.status == 201, answer
    return {"Authorization": f"Bearer {answer['key']}"}


async def create_callback(client, service: str, number: str, headers=ADMIN) -> str:
    return await create(client, service, headers=headers, _customer_number=number)


async def state_of(client, cid: str) -> str:
    return (await record(client, cid, headers=ADMIN))["_callback_state"]


async def test_missing_and_wrong_keys_answer_distinct_401s(client) -> None:
    for headers in ({}, {"Authorization": "Basic eDp5"}, {"x-api-key": ""}):
        r = await client.get("/scxml/sessions", headers=headers)
        assert r.status == 401 and (await r.json())["message"].startswith("API key required"), headers
    for headers in ({"x-api-key": "admin-kex"}, {"Authorization": "Bearer nope"}, {"x-api-key": "a" * 5000}):
        r = await client.get("/scxml/sessions", headers=headers)
        body = await r.json()
        assert r.status == 401 and body == {"exception": "Unauthorized", "message": "invalid API key"}
    r = await client.get("/health")
    assert r.status == 200


# (method, path, body) -> the roles allowed; written out here, independently of engine/roles.py.
# An allowed request gets the answer of the endpoint itself (200, or 400/404 for the deliberately
# empty or unknown thing); a refused one gets 403 before the endpoint runs.
MATRIX = [
    ("GET", f"{CB}?_customer_number=%2B15550000000", None, set(ROLES)),
    ("POST", f"{CB}/callback", {"_customer_number": "+15557770001"},
     {"administrator", "supervisor", "client"}),
    ("PUT", f"{CB}/callback/nosuchid", {"x": "1"}, {"administrator", "supervisor", "client"}),
    ("DELETE", f"{CB}/callback/nosuchid", None, {"administrator", "supervisor", "client"}),
    ("GET", f"{CB}/callback/nosuchid/events", None, set(ROLES)),
    ("GET", "/genesys/1/service/nosuchid/check-queue-position", None, set(ROLES)),
    ("POST", "/genesys/1/notification/subscription", {}, {"administrator", "client"}),
    ("POST", "/genesys/1/notification/publish", {}, {"administrator", "client"}),
    ("GET", "/scxml/sessions", None, set(ROLES)),
    ("GET", "/scxml/session/nosuchsession/query", None, set(ROLES)),
    ("POST", "/scxml/session/start", {"src": "hello"}, {"administrator", "client"}),
    ("POST", "/scxml/session/nosuchsession/terminate", None, {"administrator", "client"}),
    ("GET", "/admin/flows", None, {"administrator", "supervisor", "monitor", "developer"}),
    ("PUT", "/admin/flows/broken", "<scxml", {"administrator", "developer"}),
    ("GET", "/admin/services/callback", None, {"administrator", "supervisor", "monitor", "developer"}),
    ("PUT", "/admin/services/broken", {"_max_dial_attempts": "zero"}, {"administrator", "developer"}),
    ("PUT", "/admin/transaction-lists/broken", "", {"administrator", "developer"}),
    ("GET", "/admin/callback-settings/nosuchqueue", None,
     {"administrator", "supervisor", "monitor", "developer"}),
    ("PUT", "/admin/push/credentials", {}, {"administrator", "developer"}),
    ("GET", "/admin/push/credentials", None, {"administrator", "developer"}),  # seed 002: theirs alone
    ("GET", "/admin/business-hours/office", None, {"administrator", "supervisor", "monitor", "developer"}),
    ("PUT", "/admin/business-hours/broken", {}, {"administrator"}),
    ("GET", "/admin/dead-letters", None, {"administrator", "supervisor", "monitor"}),
    ("GET", "/admin/simulator", None, {"administrator", "supervisor", "monitor"}),
    ("PUT", "/admin/simulator", {"time_scale": "fast"}, {"administrator"}),
    ("POST", "/admin/simulator/call-in", {}, {"administrator"}),
    ("GET", "/admin/keys", None, {"administrator"}),
    ("POST", "/admin/keys", {"name": "x", "role": "nobody"}, {"administrator"}),
]


async def test_every_role_reaches_exactly_its_areas(client) -> None:
    headers = {role: await new_key(client, f"{role}-1", role) for role in ROLES}
    problems = []
    for method, path, body, allowed in MATRIX:
        for role in ROLES:
            kw = {"data": body} if isinstance(body, str) else {"json": body} if body is not None else {}
            r = await client.request(method, path, headers=headers[role], **kw)
            answer = await r.json()
            if role in allowed and r.status in (401, 403):
                problems.append(f"{role} refused {method} {path}: {r.status} {answer}")
            if role not in allowed and r.status != 403:
                problems.append(f"{role} not refused {method} {path}: {r.status} {answer}")
            if r.status >= 500:
                problems.append(f"{role} {method} {path}: {r.status} {answer}")
    assert not problems, "\n".join(problems)
    # a refusal says who may
    r = await client.put("/admin/flows/x", data="<scxml/>", headers=headers["monitor"])
    assert "administrator key" in (await r.json())["message"] and "developer key" in (await r.json())["message"]
    # an unknown path is a 404 only where the role may go: elsewhere the same 403 as a real one
    r = await client.get("/admin/nowhere", headers=headers["monitor"])
    assert r.status == 403 and "administrator key" in (await r.json())["message"]
    r = await client.get("/genesys/1/service/nowhere/x/y", headers=headers["monitor"])
    assert r.status == 404
    r = await client.get("/admin/nowhere", headers=headers["administrator"])
    assert r.status == 404


async def test_supervisors_work_any_callback_monitors_only_look(client) -> None:
    supervisor = await new_key(client, "sup", "supervisor")
    monitor = await new_key(client, "mon", "monitor")
    cid = await create_callback(client, "callback", "+15557770002", headers={"x-api-key": "client-key"})
    r = await client.delete(f"{CB}/callback/{cid}", headers=monitor)
    assert r.status == 403
    r = await client.put(f"{CB}/callback/{cid}", json={"note": "x"}, headers=monitor)
    assert r.status == 403
    r = await client.get(f"{CB}/callback/{cid}", headers=monitor)
    assert r.status == 200 and "note" not in await r.json()
    assert await state_of(client, cid) != "COMPLETED"
    r = await client.put(f"{CB}/callback/{cid}", json={"note": "by supervisor"}, headers=supervisor)
    assert r.status == 200 and (await r.json())["note"] == "by supervisor"
    r = await client.delete(f"{CB}/callback/{cid}", headers=supervisor)
    assert r.status == 200 and (await r.json())["_callback_reason"] == "CANCELLED"
    sid = await create_callback(client, "callback", "+15557770003", headers=supervisor)
    assert await state_of(client, sid) in ("QUEUED", "SCHEDULED", "ROUTING")


async def test_a_scoped_client_sees_and_changes_only_its_services(client) -> None:
    scoped = await new_key(client, "shop", "client", ["nowait"])
    other = await create_callback(client, "callback", "+15557770010")
    mine = await create_callback(client, "nowait", "+15557770010", headers=scoped)
    # queries are filtered to its services
    r = await client.get(f"{CB}?_customer_number=%2B15557770010", headers=scoped)
    assert [x["_id"] for x in await r.json()] == [mine]
    r = await client.get(f"{CB}?_customer_number=%2B15557770010", headers=ADMIN)
    assert {x["_id"] for x in await r.json()} == {mine, other}
    r = await client.get(f"{CB}?_id={other}", headers=scoped)
    assert await r.json() == []
    r = await client.get(f"{CB}/nowait/{mine}", headers=scoped)
    assert r.status == 200
    # every other service looks like it does not exist: 404, and nothing changes
    refused = [
        ("GET", f"{CB}/callback", None), ("GET", f"{CB}/callback/{other}", None),
        ("DELETE", f"{CB}/callback/{other}", None), ("PUT", f"{CB}/callback/{other}", {"x": "1"}),
        ("GET", f"{CB}/callback/{other}/events", None), ("POST", f"{CB}/callback", {"_customer_number": "+1"}),
        ("GET", f"{CB}/callback/availability", None), ("POST", f"{CB}/callback/{other}/call-in", {}),
        ("GET", f"/genesys/1/service/{other}/check-queue-position", None),
    ]
    for method, path, body in refused:
        r = await client.request(method, path, json=body, headers=scoped)
        assert r.status == 404, (method, path, r.status, await r.text())
        assert "exception" in await r.json()
    assert await state_of(client, other) != "COMPLETED"
    r = await client.get(f"{CB}/callback/{other}", headers=ADMIN)
    assert "x" not in await r.json()
    r = await client.delete(f"{CB}/nowait/{mine}", headers=scoped)
    assert r.status == 200
    # the session API would reach every service's sessions: refused
    r = await client.get("/scxml/sessions", headers=scoped)
    assert r.status == 403 and "scoped" in (await r.json())["message"]
    # subscriptions only to its own callbacks' tags
    sub = {"subscriberId": "s", "providerName": "p", "expire": 60,
           "notificationDetails": {"deviceId": "d", "type": "orscb"}}
    for pattern in ("callback/*", "*", "callback/callback/*", "callback/nowai?/*", "other/nowait/x"):
        r = await client.post("/genesys/1/notification/subscription", json={**sub, "filter": pattern},
                              headers=scoped)
        assert r.status == 403, (pattern, await r.text())
    r = await client.post("/genesys/1/notification/subscription", json={**sub, "filter": "callback/nowait/*"},
                          headers=scoped)
    assert r.status == 200, await r.text()


async def test_keys_are_created_listed_rotated_and_revoked(client) -> None:
    r = await client.post("/admin/keys", json={"name": "desk-1", "role": "client"}, headers=ADMIN)
    created = await r.json()
    secret = created["key"]
    assert r.status == 201 and created["role"] == "client" and created["prefix"] == secret[:8]
    key = {"x-api-key": secret}
    assert (await client.get("/scxml/sessions", headers=key)).status == 200
    r = await client.get("/admin/keys", headers=ADMIN)
    listing = (await r.json())["keys"]
    assert secret not in json.dumps(listing) and "sha256" not in json.dumps(listing)
    [desk] = [k for k in listing if k["name"] == "desk-1"]
    assert desk["role"] == "client" and desk["last_used"] is not None and desk["source"] == "file"
    from_env = [k for k in listing if k["source"] == "environment"]
    assert {k["name"] for k in from_env} == {"env-administrator", "env-client"}
    assert all(k["prefix"] is None for k in from_env)  # "admin-key"[:8] would give it away
    r = await client.get("/admin/keys/desk-1", headers=ADMIN)
    assert (await r.json())["prefix"] == secret[:8]
    # rotation: the old secret fails at once, the new one works
    r = await client.post("/admin/keys/desk-1/rotate", headers=ADMIN)
    rotated = (await r.json())["key"]
    assert r.status == 200 and rotated != secret
    r = await client.get("/scxml/sessions", headers=key)
    assert r.status == 401 and (await r.json())["message"] == "invalid API key"
    assert (await client.get("/scxml/sessions", headers={"x-api-key": rotated})).status == 200
    # revocation: refused at once
    r = await client.delete("/admin/keys/desk-1", headers=ADMIN)
    assert r.status == 200 and (await r.json())["revoked"] is True
    r = await client.get("/scxml/sessions", headers={"x-api-key": rotated})
    assert r.status == 401 and (await r.json())["message"] == "invalid API key"
    # many keys per role, each on its own
    a, b = await new_key(client, "a", "monitor"), await new_key(client, "b", "monitor")
    await client.delete("/admin/keys/a", headers=ADMIN)
    assert (await client.get("/scxml/sessions", headers=a)).status == 401
    assert (await client.get("/scxml/sessions", headers=b)).status == 200
    # bad requests change nothing and say what was wrong
    before = (await (await client.get("/admin/keys", headers=ADMIN)).json())["keys"]
    cases = [
        ("POST", "/admin/keys", {"name": "b", "role": "monitor"}, 409, "exists"),
        ("POST", "/admin/keys", {"name": "c", "role": "king"}, 400, "role must be one of"),
        ("POST", "/admin/keys", {"name": "c", "role": ["client"]}, 400, "role must be one of"),
        ("POST", "/admin/keys", {"name": {"x": 1}, "role": "client"}, 400, "name must be"),
        ("POST", "/admin/keys", {"name": "c", "role": "client", "services": [["x"]]}, 400, "is not a service"),
        ("POST", "/admin/keys", {"name": "bad name", "role": "client"}, 400, "name must be"),
        ("POST", "/admin/keys", {"name": "env-x", "role": "client"}, 400, "reserved"),
        ("POST", "/admin/keys", {"name": "c", "role": "monitor", "services": ["nowait"]}, 400, "only client"),
        ("POST", "/admin/keys", {"name": "c", "role": "client", "services": ["ghost"]}, 400, "no service 'ghost'"),
        ("POST", "/admin/keys", {"name": "c", "role": "client", "services": []}, 400, "services must be"),
        ("POST", "/admin/keys", {"name": "c", "role": "client", "secret": "mine"}, 400, "unknown fields"),
        ("POST", "/admin/keys", [1], 400, "JSON object"),
        ("POST", "/admin/keys/ghost/rotate", None, 404, "no key named 'ghost'"),
        ("DELETE", "/admin/keys/ghost", None, 404, "no key named 'ghost'"),
        ("DELETE", "/admin/keys/env-client", None, 409, "environment"),
        ("POST", "/admin/keys/env-administrator/rotate", None, 409, "environment"),
    ]
    for method, path, body, status, text in cases:
        r = await client.request(method, path, json=body, headers=ADMIN)
        answer = await r.json()
        assert r.status == status and text in answer["message"], (method, path, body, r.status, answer)
    after = (await (await client.get("/admin/keys", headers=ADMIN)).json())["keys"]
    assert [{**k, "last_used": 0} for k in after] == [{**k, "last_used": 0} for k in before]


async def test_the_last_administrator_key_cannot_be_revoked(aiohttp_client, tmp_path) -> None:
    port = free_port()
    app = create_app(settings_for(tmp_path, port, admin_key=None))
    client = await aiohttp_client(app, server_kwargs={"port": port})
    initial = tmp_path / "data" / "initial-admin-key"
    admin = {"x-api-key": initial.read_text().strip()}
    r = await client.delete("/admin/keys/admin", headers=admin)
    assert r.status == 409 and "last administrator" in (await r.json())["message"]
    other = await new_key_with(client, admin, "admin-2", "administrator")
    r = await client.delete("/admin/keys/admin", headers=other)
    assert r.status == 200
    assert (await client.get("/admin/keys", headers=admin)).status == 401


async def new_key_with(client, headers, name: str, role: str) -> dict[str, str]:
    r = await client.post("/admin/keys", json={"name": name, "role": role}, headers=headers)
    assert r.status == 201
    return {"x-api-key": (await r.json())["key"]}


def data_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


async def test_keys_are_stored_hashed_in_a_private_file(client, tmp_path) -> None:
    secrets = []
    for i, role in enumerate(ROLES):
        r = await client.post("/admin/keys", json={"name": f"k{i}", "role": role}, headers=ADMIN)
        secrets.append((await r.json())["key"])
    r = await client.post("/admin/keys/k0/rotate", headers=ADMIN)
    secrets.append((await r.json())["key"])
    data = tmp_path / "data"
    path = data / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert {k["name"] for k in stored["keys"]} == {f"k{i}" for i in range(len(ROLES))}
    everything = data_bytes(data)
    for secret in [*secrets, "admin-key", "client-key"]:
        assert secret.encode() not in everything, "a key in plain text in the data folder"
    assert hashlib.sha256(secrets[-1].encode()).hexdigest() in path.read_text()
    assert not [p.name for p in data.iterdir() if p.name.endswith(".tmp")]


async def test_a_key_change_that_cannot_be_saved_changes_nothing(client, tmp_path, monkeypatch) -> None:
    await new_key(client, "kept", "client")
    path = tmp_path / "data" / "keys.json"
    before_file = path.read_bytes()
    before = (await (await client.get("/admin/keys", headers=ADMIN)).json())["keys"]

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    for method, path_, body in (("POST", "/admin/keys", {"name": "new", "role": "client"}),
                                ("POST", "/admin/keys/kept/rotate", None), ("DELETE", "/admin/keys/kept", None)):
        r = await client.request(method, path_, json=body, headers=ADMIN)
        answer = await r.json()
        assert r.status == 503 and "No space left on device" in answer["message"], answer
    monkeypatch.undo()
    after = (await (await client.get("/admin/keys", headers=ADMIN)).json())["keys"]
    assert [{**k, "last_used": 0} for k in after] == [{**k, "last_used": 0} for k in before]
    assert path.read_bytes() == before_file
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


async def test_a_keys_file_broken_by_hand_keeps_the_keys_in_use(client, tmp_path, caplog) -> None:
    kept = await new_key(client, "kept", "client")
    path = tmp_path / "data" / "keys.json"
    path.write_text("{not json")
    for _ in range(3):
        assert (await client.get("/scxml/sessions", headers={"x-api-key": "wrong"})).status == 401
    assert (await client.get("/scxml/sessions", headers=kept)).status == 200
    assert sum("cannot be read" in r.getMessage() for r in caplog.records) == 1
    r = await client.post("/admin/keys", json={"name": "more", "role": "client"}, headers=ADMIN)
    assert r.status == 503 and "cannot be read" in (await r.json())["message"]
    assert path.read_text() == "{not json"


async def test_plain_text_keys_of_older_versions_keep_working_but_are_hashed(aiohttp_client, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    old = {"administrator": "old-admin-secret-abcdef", "client": "old-client-secret-abcdef"}
    (data / "keys.json").write_text(json.dumps(old))
    port = free_port()
    client = await aiohttp_client(create_app(settings_for(tmp_path, port, admin_key=None, client_key=None)),
                                  server_kwargs={"port": port})
    assert (await client.get("/scxml/sessions", headers={"x-api-key": old["client"]})).status == 200
    assert (await client.get("/admin/keys", headers={"x-api-key": old["administrator"]})).status == 200
    for secret in old.values():
        assert secret.encode() not in data_bytes(data)
    assert not (data / "initial-admin-key").exists()


async def test_keys_from_the_environment_work_and_leave_it(aiohttp_client, tmp_path, monkeypatch) -> None:
    key_file = tmp_path / "developer.key"
    key_file.write_text("developer-from-file\n")
    monkeypatch.setenv("CALLBACK_ENGINE_ADMIN_KEY", "admin-from-env")
    monkeypatch.setenv("CALLBACK_ENGINE_CLIENT_KEY", "client-from-env")
    monkeypatch.setenv("CALLBACK_ENGINE_DEVELOPER_KEY_FILE", str(key_file))
    settings = Settings.load(config_dir=write_config(tmp_path), data_dir=tmp_path / "data",
                             flows_dir=REPO / "scxml", flow_watch_interval=0)
    port = free_port()
    settings.port = port
    client = await aiohttp_client(create_app(settings), server_kwargs={"port": port})
    assert not [k for k in os.environ if k.startswith("CALLBACK_ENGINE_") and "_KEY" in k]
    assert (await client.get("/admin/keys", headers={"x-api-key": "admin-from-env"})).status == 200
    assert (await client.get("/scxml/sessions", headers={"x-api-key": "client-from-env"})).status == 200
    assert (await client.get("/admin/flows", headers={"x-api-key": "developer-from-file"})).status == 200
    assert b"from-env" not in data_bytes(tmp_path / "data")


PROBE = """<?xml version="1.0"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="s">
  <datamodel><data id="seen" expr="sorted(k for k in __import__('os').environ if 'KEY' in k)"/></datamodel>
  <state id="s"/>
</scxml>
"""


async def test_a_flow_in_the_engine_process_cannot_read_the_key_variables(tmp_path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "probe.scxml").write_text(PROBE)
    engine = EngineProcess(tmp_path / "data", flows)
    await engine.start()
    try:
        async with ClientSession() as http:
            h = {"x-api-key": CLIENT_KEY}
            async with http.post(engine.url + "/scxml/session/start", data={"src": "probe"}, headers=h) as r:
                sid = (await r.json())["sessionid"]
            async with http.get(f"{engine.url}/scxml/session/{sid}/query", headers=h) as r:
                assert (await r.json())["datamodel"]["seen"] == []
            async with http.get(engine.url + "/admin/keys", headers={"x-api-key": ADMIN_KEY}) as r:
                assert r.status == 200
    finally:
        engine.stop()


def run_keys(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACK_ENGINE_")}
    return subprocess.run([sys.executable, str(REPO / "run_engine.py"), "keys", "--data", str(data), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


async def test_first_start_and_the_keys_command(tmp_path) -> None:
    """README's walkthrough: a first start writes an administrator key once to a private file;
    ``run_engine.py keys create`` makes a client key the running engine accepts at once."""
    data = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACK_ENGINE_")}
    log = open(tmp_path / "engine.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, str(REPO / "run_engine.py"), "serve", "--data", str(data),
                             "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        async with ClientSession() as http:

            async def health() -> int:
                assert proc.poll() is None, (tmp_path / "engine.log").read_text()
                async with http.get(url + "/health") as r:
                    return r.status

            await eventually(health, lambda status: status == 200, timeout=30, interval=0.05, ignoring=(OSError,),
                             expected="healthy",
                             seen=lambda last: f"{last!r}; log:\n{(tmp_path / 'engine.log').read_text()}")
            assert "initial-admin-key" in (tmp_path / "engine.log").read_text()
            initial = data / "initial-admin-key"
            assert stat.S_IMODE(initial.stat().st_mode) == 0o600
            admin = {"x-api-key": initial.read_text().strip()}
            async with http.get(url + "/admin/keys", headers=admin) as r:
                assert r.status == 200 and [k["name"] for k in (await r.json())["keys"]] == ["admin"]
            made = run_keys(data, "create", "--role", "client", "--name", "walkthrough")
            assert made.returncode == 0, made.stderr
            secret = made.stdout.strip()
            assert secret.startswith("cbe_") and "\n" not in secret
            async with http.get(url + "/scxml/sessions", headers={"x-api-key": secret}) as r:
                assert r.status == 200, await r.text()
            listed = run_keys(data)
            assert "walkthrough\tclient" in listed.stdout and secret not in listed.stdout
            assert secret not in (data / "keys.json").read_text()
            revoked = run_keys(data, "revoke", "walkthrough")
            assert revoked.returncode == 0, revoked.stderr

            async def sessions_status() -> int:
                async with http.get(url + "/scxml/sessions", headers={"x-api-key": secret}) as r:
                    return r.status

            # the engine rechecks the file at most once a second
            await eventually(sessions_status, lambda status: status == 401, timeout=1.2,
                             expected="401 for the revoked key")
            bad = run_keys(data, "create", "--role", "king", "--name", "x")
            assert bad.returncode == 2 and "role must be one of" in bad.stderr
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
