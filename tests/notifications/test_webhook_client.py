"""The dispatcher's own HTTP client against real loopback servers: what reaches the receiver,
connection reuse and closing, the timeout, redirects, oversized answers, the URL policy, TLS."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from engine.notifications.webhook_client import WebhookClient
from engine.urlpolicy import AddressRefused, UrlPolicy, UrlRefused, refusal
from tests.support.loopback import serve

LOOPBACK = UrlPolicy(networks=["127.0.0.0/8"])
HEADERS = {"Content-Type": "application/json", "webhook-id": "msg_1"}


class Peer:
    """An aiohttp receiver that records each request with the client port it came from."""

    def __init__(self, answer: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None):
        self.answer = answer
        self.seen: list[tuple[int, str, dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> Peer:
        async def handle(request: web.Request) -> web.StreamResponse:
            peer = request.transport.get_extra_info("peername")[1]
            self.seen.append((peer, request.path_qs, dict(request.headers), await request.read()))
            return await self.answer(request) if self.answer else web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        if ssl_context is None:
            self.runner, self.port = await serve(app)
        else:
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "/hook", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def peers():
    made: list[Peer] = []

    async def make(answer=None, ssl_context=None) -> Peer:
        made.append(await Peer(answer).start(ssl_context))
        return made[-1]

    yield make
    for peer in made:
        await peer.stop()


@pytest.fixture
async def raw_server():
    """A loopback TCP server whose ``handle(reader, writer)`` speaks raw bytes."""
    servers: list[asyncio.AbstractServer] = []

    async def make(handle) -> int:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield make
    for server in servers:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    return head + await reader.readexactly(length)


# -- what goes out, and connection reuse ----------------------------------------------------------
async def test_a_post_reaches_the_receiver_with_its_headers_and_the_connection_is_reused(peers) -> None:
    peer = await peers()
    client = WebhookClient(LOOPBACK, 5.0)
    body = json.dumps({"n": 1}).encode()
    first = await client.post(peer.url("/hook?x=1"), body, HEADERS)
    second = await client.post(peer.url("/hook?x=2"), b"{}", {**HEADERS, "webhook-id": "msg_2"})
    await client.close()
    assert first.status == second.status == 200 and first.headers["content-length"] == "2"
    (port1, path1, headers1, body1), (port2, path2, _, body2) = peer.seen
    assert (path1, body1, path2, body2) == ("/hook?x=1", body, "/hook?x=2", b"{}")
    assert headers1["Host"] == f"127.0.0.1:{peer.port}" and headers1["webhook-id"] == "msg_1"
    assert headers1["User-Agent"] == "callback-engine"
    assert headers1["Content-Type"] == "application/json" and headers1["Content-Length"] == str(len(body))
    assert port1 == port2  # one kept-alive connection carried both


async def test_concurrent_posts_open_at_most_limit_connections(peers) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response(text="ok")

    peer = await peers(slow)
    client = WebhookClient(LOOPBACK, 5.0, limit=2)
    answers = await asyncio.gather(*(client.post(peer.url(), b"{}", HEADERS) for _ in range(8)))
    assert [a.status for a in answers] == [200] * 8
    assert len({port for port, *_ in peer.seen}) == 2 and client.open_connections == 2
    await client.close()


async def test_at_the_limit_a_busy_origin_does_not_starve_another(peers) -> None:
    """One connection allowed: an origin posting back to back hands the slot on to the other
    origin waiting in line, instead of taking its own connection again."""
    order: list[str] = []

    async def note(request: web.Request) -> web.Response:
        order.append(request.path)
        await asyncio.sleep(0.005)
        return web.Response(text="ok")

    busy, other = await peers(note), await peers(note)
    client = WebhookClient(LOOPBACK, 5.0, limit=1)

    async def back_to_back() -> None:
        for _ in range(20):
            await client.post(busy.url("/busy"), b"{}", HEADERS)

    loop_task = asyncio.ensure_future(back_to_back())
    while not order:
        await asyncio.sleep(0.001)
    await client.post(other.url("/other"), b"{}", HEADERS)
    assert order.index("/other") <= 2, order
    await loop_task
    assert client.open_connections == 1
    await client.close()


async def test_a_post_timing_out_in_line_leaves_the_pool_whole(peers) -> None:
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        if request.query.get("hold"):
            await release.wait()
        return web.Response(text="ok")

    peer = await peers(held)
    client = WebhookClient(LOOPBACK, 5.0, limit=1)
    holding = asyncio.ensure_future(client.post(peer.url("/hook?hold=1"), b"{}", HEADERS))
    while not peer.seen:
        await asyncio.sleep(0.005)
    client.timeout = 0.1
    with pytest.raises(TimeoutError):  # waited in line for the one connection
        await client.post(peer.url(), b"{}", HEADERS)
    queued = asyncio.ensure_future(client.post(peer.url("/hook?queued=1"), b"{}", HEADERS))
    await asyncio.sleep(0.02)
    queued.cancel()  # leaves the line
    client.timeout = 5.0
    release.set()
    assert (await holding).status == 200
    assert (await client.post(peer.url(), b"{}", HEADERS)).status == 200
    assert client.open_connections == 1 and len({port for port, *_ in peer.seen}) == 1
    assert [path for _, path, *_ in peer.seen] == ["/hook?hold=1", "/hook"]
    await client.close()


async def test_a_server_closing_the_connection_gets_a_new_one(peers) -> None:
    async def closing(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"Connection": "close"})

    peer = await peers(closing)
    client = WebhookClient(LOOPBACK, 5.0)
    for _ in range(3):
        assert (await client.post(peer.url(), b"{}", HEADERS)).status == 200
    assert len({port for port, *_ in peer.seen}) == 3
    await client.close()


async def test_a_kept_connection_the_server_dropped_is_retried_once_on_a_new_one(raw_server) -> None:
    """The second request on a connection finds the server gone before any answer byte (the race
    of a keep-alive expiring): it goes once more on a fresh connection, and succeeds."""
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        served.append(writer.get_extra_info("peername")[1])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await read_request(reader)  # the next request on this connection: no answer, just close
        writer.close()

    port = await raw_server(handle)
    client = WebhookClient(LOOPBACK, 5.0)
    assert (await client.post(f"http://127.0.0.1:{port}/", b"{}", HEADERS)).status == 200
    assert (await client.post(f"http://127.0.0.1:{port}/", b"{}", HEADERS)).status == 200
    assert len(served) == 2 and served[0] != served[1]
    await client.close()


async def test_a_fresh_connection_closed_before_an_answer_is_a_failure_not_a_retry(raw_server) -> None:
    attempts: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        attempts.append(1)
        writer.close()

    port = await raw_server(handle)
    client = WebhookClient(LOOPBACK, 5.0)
    with pytest.raises(ConnectionError, match="closed the connection before a complete answer"):
        await client.post(f"http://127.0.0.1:{port}/", b"{}", HEADERS)
    assert attempts == [1] and client.open_connections == 0
    await client.close()


async def test_an_idle_connection_is_closed_after_keepalive(peers) -> None:
    peer = await peers()
    client = WebhookClient(LOOPBACK, 5.0, keepalive=0.1)
    await client.post(peer.url(), b"{}", HEADERS)
    assert client.open_connections == 1
    await asyncio.sleep(0.3)
    assert client.open_connections == 0
    await client.post(peer.url(), b"{}", HEADERS)
    assert len({port for port, *_ in peer.seen}) == 2
    await client.close()


async def test_after_a_reset_no_connection_made_before_is_used_again(peers) -> None:
    """The policy's rules changed: the idle connection is closed, and one in flight during the
    reset finishes but is not kept."""
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        if request.query.get("hold"):
            await release.wait()
        return web.Response(text="ok")

    peer = await peers(held)
    client = WebhookClient(LOOPBACK, 5.0)
    await client.post(peer.url(), b"{}", HEADERS)
    await client.post(peer.url(), b"{}", HEADERS)
    in_flight = asyncio.ensure_future(client.post(peer.url("/hook?hold=1"), b"{}", HEADERS))
    while len(peer.seen) < 3:
        await asyncio.sleep(0.01)
    client.reset()
    release.set()
    assert (await in_flight).status == 200 and client.open_connections == 0
    await client.post(peer.url(), b"{}", HEADERS)
    ports = [port for port, *_ in peer.seen]
    assert ports[0] == ports[1] == ports[2] and ports[3] != ports[0]
    await client.close()


# -- failures ---------------------------------------------------------------------------------------
async def test_a_slow_server_hits_the_timeout_and_its_connection_is_dropped(peers) -> None:
    async def stall(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    peer = await peers(stall)
    client = WebhookClient(LOOPBACK, 0.2)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError, match=r"no complete answer within 0\.2 s"):
        await client.post(peer.url(), b"{}", HEADERS)
    assert loop.time() - began < 1.0 and client.open_connections == 0
    await client.close()


async def test_a_redirect_is_answered_not_followed(peers) -> None:
    elsewhere = await peers()

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": elsewhere.url("/stolen")})

    peer = await peers(redirect)
    client = WebhookClient(LOOPBACK, 5.0)
    answer = await client.post(peer.url(), b"{}", HEADERS)
    await client.close()
    assert answer.status == 307 and answer.headers["location"] == elsewhere.url("/stolen")
    assert elsewhere.seen == []


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_answer_is_not_read_and_its_connection_not_reused(peers, chunked) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = 4 << 20
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 65536)
        return response

    peer = await peers(huge)
    client = WebhookClient(LOOPBACK, 5.0, max_body=100_000)
    assert (await client.post(peer.url(), b"{}", HEADERS)).status == 200
    assert client.open_connections == 0
    await client.close()


async def test_an_oversized_head_fails(raw_server) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"y" * 70_000 + b"\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    port = await raw_server(handle)
    client = WebhookClient(LOOPBACK, 5.0)
    with pytest.raises(ConnectionError, match="answer head over"):
        await client.post(f"http://127.0.0.1:{port}/", b"{}", HEADERS)
    assert client.open_connections == 0
    await client.close()


# -- the URL policy -------------------------------------------------------------------------------
async def test_a_private_address_is_refused_before_any_connection(peers) -> None:
    peer = await peers()
    client = WebhookClient(UrlPolicy(), 5.0)
    with pytest.raises(UrlRefused, match="not public"):
        await client.post(peer.url(), b"{}", HEADERS)
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1") as refused:  # a name resolving to loopback
        await client.post(peer.url(host="localhost"), b"{}", HEADERS)
    assert refusal(refused.value) is not None
    with pytest.raises(UrlRefused, match="userinfo"):
        await client.post(f"http://user@127.0.0.1:{peer.port}/", b"{}", HEADERS)
    assert peer.seen == [] and client.open_connections == 0
    await client.close()


async def test_the_allow_list_of_origins_holds(peers) -> None:
    allowed, other = await peers(), await peers()
    client = WebhookClient(UrlPolicy([f"http://127.0.0.1:{allowed.port}"]), 5.0)
    assert (await client.post(allowed.url(), b"{}", HEADERS)).status == 200
    with pytest.raises(UrlRefused, match="allow list"):
        await client.post(other.url(), b"{}", HEADERS)
    assert other.seen == []
    await client.close()


async def test_a_header_with_a_line_break_is_refused(peers) -> None:
    peer = await peers()
    client = WebhookClient(LOOPBACK, 5.0)
    with pytest.raises(ValueError, match="line break"):
        await client.post(peer.url(), b"{}", {"webhook-id": "x\r\nX-Forged: 1"})
    assert peer.seen == []
    await client.close()


# -- TLS --------------------------------------------------------------------------------------------
def self_signed(tmp_path: Path, san: str) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{san}.pem", tmp_path / f"{san}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=test", "-addext", f"subjectAltName={san}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_tls_is_verified_chain_and_host_name(peers, tmp_path) -> None:
    good_cert, good_key = self_signed(tmp_path, "IP:127.0.0.1")
    wrong_cert, wrong_key = self_signed(tmp_path, "DNS:elsewhere.test")
    contexts = []
    for cert, key in ((good_cert, good_key), (wrong_cert, wrong_key)):
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert, key)
        contexts.append(server)
    good, wrong = await peers(ssl_context=contexts[0]), await peers(ssl_context=contexts[1])

    untrusting = WebhookClient(LOOPBACK, 5.0)  # the system's trust store: a self-signed chain fails
    with pytest.raises(ssl.SSLCertVerificationError):
        await untrusting.post(good.url(scheme="https"), b"{}", HEADERS)
    await untrusting.close()

    trusting = ssl.create_default_context(cafile=str(good_cert))
    trusting.load_verify_locations(cafile=str(wrong_cert))
    client = WebhookClient(LOOPBACK, 5.0, ssl_context=trusting)
    assert (await client.post(good.url(scheme="https"), b"{}", HEADERS)).status == 200
    with pytest.raises(ssl.SSLCertVerificationError, match=r"127\.0\.0\.1"):  # trusted chain, wrong name
        await client.post(wrong.url(scheme="https"), b"{}", HEADERS)
    assert len(good.seen) == 1 and wrong.seen == []
    await client.close()


async def test_a_policy_adopting_new_rules_resets_the_client(peers) -> None:
    """``UrlPolicy.adopt`` (a cluster's notifications.json changed): the kept connection is closed,
    and a target the new rules refuse is refused."""
    peer = await peers()
    policy = UrlPolicy(networks=["127.0.0.0/8"])
    client = WebhookClient(policy, 5.0)
    await client.post(peer.url(), b"{}", HEADERS)
    assert client.open_connections == 1
    policy.adopt(UrlPolicy())
    assert client.open_connections == 0
    with pytest.raises(UrlRefused):
        await client.post(peer.url(), b"{}", HEADERS)
    await client.close()
