"""Issue 13 item 1 and 3 at the HTTP level: signing in turns a key into an HttpOnly, SameSite=Strict
session cookie; changes made with it need the CSRF token and this origin; roles apply as for the
key; sessions end at sign-out, when idle or too old, and when their key is rotated or revoked;
failed sign-ins are slowed down; the console's files are only the listed ones, with a strict CSP."""

from __future__ import annotations

import asyncio
from http.cookies import SimpleCookie
from pathlib import Path

from engine.console.headers import CSP
from engine.console.routes import CAPABILITIES, static_files
from engine.console.session import COOKIE, FAILURE_WINDOW, MAX_FAILURES, SESSIONS
from tests.api.conftest import ADMIN

CALLBACK = "/genesys/1/service/callback"


async def sign_in(client, key: str, **headers: str) -> tuple[str, dict, SimpleCookie]:
    """POST /ui/session; the cookie token, the answer and the parsed Set-Cookie. The client's own
    cookie jar is emptied: each test sends the cookie it means to."""
    r = await client.post("/ui/session", json={"key": key}, headers=headers)
    assert r.status == 200, await r.text()
    cookie = SimpleCookie(r.headers["Set-Cookie"])
    client.session.cookie_jar.clear()
    return cookie[COOKIE].value, await r.json(), cookie


def with_cookie(token: str, **more: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={token}", **more}


async def make_key(client, name: str, role: str) -> str:
    r = await client.post("/admin/keys", json={"name": name, "role": role}, headers=ADMIN)
    assert r.status == 201, await r.text()
    return (await r.json())["key"]


async def test_signing_in_sets_an_http_only_strict_cookie_and_answers_who_and_what(console_client) -> None:
    client = await console_client()
    token, body, cookie = await sign_in(client, "admin-key")
    morsel = cookie[COOKIE]
    assert len(token) >= 40 and token != "admin-key"
    assert morsel["httponly"] is True and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert not morsel["secure"]  # plain http and console_secure_cookie off
    assert not morsel["max-age"] and not morsel["expires"]  # gone when the browser closes
    assert body["name"] == "env-administrator" and body["role"] == "administrator"
    assert len(body["csrf"]) >= 40 and body["csrf"] != token
    assert body["expires_at"].endswith("Z")
    assert body["may"] == dict.fromkeys(CAPABILITIES, True)
    r = await client.get("/ui/session", headers=with_cookie(token))
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    again = await r.json()
    assert again["csrf"] == body["csrf"] and again["name"] == body["name"] and again["may"] == body["may"]
    r = await client.get("/admin/keys", headers=with_cookie(token))  # the cookie stands for the key
    assert r.status == 200 and any(k["name"] == "env-administrator" for k in (await r.json())["keys"])


async def test_the_cookie_is_secure_over_https_or_when_the_setting_says_so(console_client) -> None:
    client = await console_client()
    _, _, cookie = await sign_in(client, "admin-key", **{"X-Forwarded-Proto": "https"})
    assert cookie[COOKIE]["secure"] is True
    client = await console_client(console_secure_cookie=True)
    _, _, cookie = await sign_in(client, "admin-key")
    assert cookie[COOKIE]["secure"] is True


async def test_a_wrong_or_missing_key_is_refused(console_client) -> None:
    client = await console_client()
    r = await client.post("/ui/session", json={"key": "not-a-key"})
    assert r.status == 401 and (await r.json())["message"] == "invalid API key"
    assert "Set-Cookie" not in r.headers
    for body in ({}, {"key": ""}, {"key": 5}):
        r = await client.post("/ui/session", json=body)
        assert r.status == 400 and "key" in (await r.json())["message"], body
    r = await client.get("/ui/session")
    assert r.status == 401 and "sign" in (await r.json())["message"]
    r = await client.get("/ui/session", headers=with_cookie("made-up-token"))
    assert r.status == 401
    r = await client.get("/admin/keys", headers=with_cookie("made-up-token"))
    assert r.status == 401 and "session ended" in (await r.json())["message"]


async def test_repeated_failures_from_one_address_are_slowed_down(console_client) -> None:
    client = await console_client()
    store = client.app[SESSIONS]
    now = [1_000_000.0]
    store.clock = lambda: now[0]
    for _ in range(MAX_FAILURES):
        r = await client.post("/ui/session", json={"key": "guess"})
        assert r.status == 401
        now[0] += 1
    r = await client.post("/ui/session", json={"key": "admin-key"})  # even the right key must wait now
    assert r.status == 429 and (await r.json())["exception"] == "TooManyRequests"
    wait = int(r.headers["Retry-After"])
    assert 0 < wait <= FAILURE_WINDOW
    now[0] += wait
    r = await client.post("/ui/session", json={"key": "admin-key"})
    assert r.status == 200, await r.text()


async def test_signing_out_needs_the_csrf_token_and_ends_the_session(console_client) -> None:
    client = await console_client()
    token, body, _ = await sign_in(client, "admin-key")
    r = await client.delete("/ui/session", headers=with_cookie(token))
    assert r.status == 403 and (await r.json())["message"] == "CSRF token missing or wrong"
    r = await client.delete("/ui/session", headers=with_cookie(token, **{"X-CSRF-Token": body["csrf"]}))
    assert r.status == 204
    cleared = SimpleCookie(r.headers["Set-Cookie"])[COOKIE]
    assert cleared.value == "" and cleared["max-age"] == "0"
    assert (await client.get("/ui/session", headers=with_cookie(token))).status == 401
    assert (await client.get("/admin/keys", headers=with_cookie(token))).status == 401
    r = await client.delete("/ui/session")  # nobody signed in: nothing to do, no harm
    assert r.status == 204


async def test_a_change_with_the_cookie_needs_the_csrf_token_and_this_origin(console_client) -> None:
    client = await console_client()
    token, body, _ = await sign_in(client, "admin-key")
    own = f"http://{client.host}:{client.port}"
    new_key = {"name": "made-in-the-console", "role": "monitor"}
    refused = [with_cookie(token),
               with_cookie(token, **{"X-CSRF-Token": "wrong"}),
               with_cookie(token, **{"X-CSRF-Token": body["csrf"][:-1]}),
               with_cookie(token, **{"X-CSRF-Token": body["csrf"], "Origin": "https://evil.example"}),
               with_cookie(token, **{"X-CSRF-Token": body["csrf"], "Origin": "null"})]
    for headers in refused:
        r = await client.post("/admin/keys", json=new_key, headers=headers)
        assert r.status == 403 and (await r.json())["message"] == "CSRF token missing or wrong", headers
    r = await client.get("/admin/keys", headers=ADMIN)
    assert "made-in-the-console" not in {k["name"] for k in (await r.json())["keys"]}  # nothing was made
    r = await client.post("/admin/keys", json=new_key,
                          headers=with_cookie(token, **{"X-CSRF-Token": body["csrf"], "Origin": own}))
    assert r.status == 201, await r.text()
    r = await client.delete("/admin/keys/made-in-the-console",
                            headers=with_cookie(token, **{"X-CSRF-Token": body["csrf"]}))  # no Origin: fine
    assert r.status == 200, await r.text()
    r = await client.post("/ui/session", json={"key": "admin-key"}, headers={"Origin": "https://evil.example"})
    assert r.status == 403  # nor can another site sign the browser in


async def test_roles_apply_through_the_cookie_as_for_the_key(console_client) -> None:
    client = await console_client()
    monitor = await make_key(client, "watcher", "monitor")
    token, body, _ = await sign_in(client, monitor)
    assert body["role"] == "monitor"
    assert set(body["may"]) == set(CAPABILITIES)
    assert {name for name, allowed in body["may"].items() if allowed and not name.endswith(".read")} == set()
    assert all(body["may"][name] for name in ("services.read", "flows.read", "dead_letters.read", "sessions.read",
                                              "transaction_lists.read", "simulator.read"))
    assert body["may"]["push.read"] is False  # seed 002: the developer's and the administrator's page
    changing = with_cookie(token, **{"X-CSRF-Token": body["csrf"]})
    r = await client.post(f"{CALLBACK}/callback", json={"_customer_number": "+15551234567"}, headers=changing)
    assert r.status == 403 and "monitor role may not POST" in (await r.json())["message"]
    r = await client.get("/admin/services", headers=with_cookie(token))
    assert r.status == 200
    r = await client.get("/admin/keys", headers=with_cookie(token))
    assert r.status == 403
    # A key sent with the request is used instead of the cookie (and needs no CSRF token).
    r = await client.get("/admin/keys", headers=with_cookie(token, **ADMIN))
    assert r.status == 200


async def test_a_rotated_or_revoked_key_ends_its_sessions(console_client) -> None:
    client = await console_client()
    await make_key(client, "shift-lead", "supervisor")
    secret = await make_key(client, "night-shift", "supervisor")
    rotated = await make_key(client, "day-shift", "supervisor")
    token, _, _ = await sign_in(client, secret)
    other, _, _ = await sign_in(client, rotated)
    assert (await client.get("/admin/services", headers=with_cookie(token))).status == 200
    assert (await client.post("/admin/keys/day-shift/rotate", headers=ADMIN)).status == 200
    r = await client.get("/admin/services", headers=with_cookie(other))
    assert r.status == 401 and "rotated" in (await r.json())["message"]
    assert (await client.get("/ui/session", headers=with_cookie(other))).status == 401
    assert (await client.get("/admin/services", headers=with_cookie(token))).status == 200  # others live on
    assert (await client.delete("/admin/keys/night-shift", headers=ADMIN)).status == 200
    assert (await client.get("/admin/services", headers=with_cookie(token))).status == 401
    assert len(client.app[SESSIONS]) == 0  # both forgotten, not only refused


async def test_an_idle_session_ends_and_use_keeps_it_alive(console_client) -> None:
    client = await console_client(console_idle_minutes=0.02)  # 1.2 s
    token, _, _ = await sign_in(client, "admin-key")
    for _ in range(4):  # 2 s in all, but never 1.2 s without a use
        await asyncio.sleep(0.5)
        assert (await client.get("/admin/services", headers=with_cookie(token))).status == 200
    await asyncio.sleep(1.5)
    r = await client.get("/admin/services", headers=with_cookie(token))
    assert r.status == 401 and "idle" in (await r.json())["message"]


async def test_every_session_ends_after_the_longest_time_however_busy(console_client) -> None:
    client = await console_client(console_max_hours=1)
    store = client.app[SESSIONS]
    now = [1_000_000.0]
    store.clock = lambda: now[0]
    token, body, _ = await sign_in(client, "admin-key")
    assert body["expires_at"] == "1970-01-12T14:16:40.000Z"  # signed in at 1,000,000 + 30 idle minutes
    for _ in range(4):  # used every 15 minutes: never idle, 3,596 s after sign-in
        now[0] += 15 * 60 - 1
        assert (await client.get("/ui/session", headers=with_cookie(token))).status == 200
    assert (await client.get("/ui/session", headers=with_cookie(token))).status == 200
    now[0] += 5  # an hour after sign-in
    assert (await client.get("/admin/services", headers=with_cookie(token))).status == 401


async def test_the_page_is_served_with_a_strict_content_security_policy(console_client) -> None:
    client = await console_client()
    r = await client.get("/ui", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/ui/"
    r = await client.get("/ui/")
    assert r.status == 200 and r.content_type == "text/html"
    page = await r.text()
    assert "<script" in page and 'src="js/' in page
    policy = dict(part.strip().split(" ", 1) for part in r.headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'" and "unsafe-inline" not in r.headers["Content-Security-Policy"]
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "no-referrer" and r.headers["Cache-Control"] == "no-store"
    r = await client.get("/ui/js/core.js")
    assert r.status == 200 and r.content_type == "text/javascript"
    assert r.headers["Content-Security-Policy"] == CSP and r.headers["Cache-Control"] == "no-cache"
    r = await client.get("/ui/css/console.css")
    assert r.status == 200 and r.content_type == "text/css"
    r = await client.get("/ui/nothing-here.js")
    assert r.status == 404 and (await r.json())["exception"] == "NotFound"
    assert r.headers["Content-Security-Policy"] == CSP  # errors too
    r = await client.get("/health")
    assert "Content-Security-Policy" not in r.headers  # the API's answers are left alone


async def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """A request line sent as written: HTTP clients would tidy ``..`` away before sending."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1]), answer


async def test_no_path_leads_out_of_the_console_folder(console_client) -> None:
    client = await console_client()
    status, _ = await raw_get(client.port, "/ui/js/core.js")
    assert status == 200  # the raw request itself works
    for target in ("/ui/../engine", "/ui/%2e%2e/", "/ui/js/../../routes.py", "/ui/%2e%2e/routes.py",
                   "/ui/js/%2e%2e/%2e%2e/routes.py", "/ui/..%2froutes.py", "/ui/%2e%2e%2f%2e%2e%2fsettings.py",
                   "/ui//etc/passwd", "/ui/js/../../../settings.py", "/ui/.%2e/session.py"):
        status, answer = await raw_get(client.port, target)
        assert status == 404, (target, answer[:300])
        assert b"def " not in answer and b"import" not in answer, target


def test_only_files_of_known_kinds_are_listed(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ("index.html", "js/a.js", "js/a.js.map", "notes.md", ".hidden.js", ".git/config.json", "x.py"):
        (tmp_path / name).write_text("x")
    assert {name: media for name, (_, media) in static_files(tmp_path).items()} == {
        "index.html": "text/html", "js/a.js": "text/javascript", "js/a.js.map": "application/json"}
