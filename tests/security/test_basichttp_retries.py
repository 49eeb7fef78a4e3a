"""Issue 9 item 12 (last part): transient Basic HTTP send failures are retried with backoff within a
bounded budget before ``error.communication``, and every failure is logged with its cause."""

from __future__ import annotations

import logging
from functools import partial

from aiohttp import web

from engine.scxml import BASIC_HTTP, DEFAULT_REGISTRY, BasicHttpProcessor, SessionHost
from engine.scxml.basichttp import RetryBudget
from engine.urlpolicy import UrlPolicy
from tests.scxml.documents import scxml
from tests.security.outbound_support import Peer
from tests.support.engine_process import free_port
from tests.support.eventually import eventually

LOG = "engine.scxml.basichttp"


def host_for(budget: RetryBudget) -> SessionHost:
    registry = DEFAULT_REGISTRY.copy()
    registry.register_processor(BASIC_HTTP, partial(
        BasicHttpProcessor, policy=UrlPolicy(networks=["127.0.0.0/8"]), retry=budget), "basichttp")
    return SessionHost(registry=registry)


def sender(target: str) -> object:
    return scxml(f'<state id="s"><onentry><send event="x" type="basichttp" target="{target}"/></onentry>'
                 '<transition event="error.communication" target="failed"/></state><final id="failed"/>')


async def test_transient_answers_are_retried_until_delivered(caplog) -> None:
    answers = [503, 429, 200]

    async def flaky(request: web.Request) -> web.Response:
        return web.Response(status=answers.pop(0), text="x")

    peer = await Peer(flaky).start()
    host = host_for(RetryBudget(attempts=4, seconds=5.0, first_delay=0.05))
    caplog.set_level(logging.INFO, logger=LOG)
    try:
        await host.start()
        session = host.start_session(sender(peer.url()))
        await eventually(lambda: len(peer.requests) == 3, timeout=10, expected="three attempts")
        await eventually(lambda: not host._processors[BASIC_HTTP]._tasks, timeout=5, expected="the send to finish")
        assert session.is_running and "s" in session.active_state_ids()  # no error.communication
        assert len(peer.requests) == 3
        logged = [r.getMessage() for r in caplog.records if r.name == LOG]
        assert any("attempt 1 failed (answered HTTP 503)" in m for m in logged), logged
        assert any("attempt 2 failed (answered HTTP 429)" in m for m in logged), logged
    finally:
        await host.close()
        await peer.stop()


async def test_refused_connections_are_retried_within_budget_then_error(caplog) -> None:
    port = free_port()  # nothing listens there: every connect is refused
    host = host_for(RetryBudget(attempts=3, seconds=5.0, first_delay=0.05))
    caplog.set_level(logging.INFO, logger=LOG)
    try:
        await host.start()
        session = host.start_session(sender(f"http://127.0.0.1:{port}/x"))
        await eventually(lambda: not session.is_running, timeout=10, expected="error.communication")
        assert session.final_state == "failed"
        logged = [r.getMessage() for r in caplog.records if r.name == LOG]
        assert sum("failed (" in m and "retrying in" in m for m in logged) == 2, logged
        final = [m for m in logged if "failed after 3 attempt(s)" in m]
        assert len(final) == 1 and "ClientConnectorError" in final[0], logged
        assert not any(m.rstrip().endswith("failed:") for m in logged)  # never an empty cause
    finally:
        await host.close()


async def test_reset_connections_are_retried_and_the_budget_bounds_them(caplog) -> None:
    async def reset(request: web.Request) -> web.Response:
        request.transport.close()  # the connection drops mid-request
        return web.Response(status=200)

    peer = await Peer(reset).start()
    host = host_for(RetryBudget(attempts=10, seconds=0.5, first_delay=0.2))  # time runs out first
    caplog.set_level(logging.INFO, logger=LOG)
    try:
        await host.start()
        session = host.start_session(sender(peer.url()))
        await eventually(lambda: not session.is_running, timeout=10, expected="error.communication")
        assert session.final_state == "failed"
        assert 2 <= len(peer.requests) <= 3  # 0.2 s then 0.4 s: the third wait would pass 0.5 s
        final = [r.getMessage() for r in caplog.records if "failed after" in r.getMessage()]
        assert final and "ServerDisconnectedError" in final[0]
    finally:
        await host.close()
        await peer.stop()


async def test_answers_retrying_cannot_fix_fail_at_once(caplog) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=404 if request.path == "/gone" else 302, headers={"Location": "/elsewhere"})

    peer = await Peer(answer).start()
    host = host_for(RetryBudget(attempts=4, seconds=5.0, first_delay=0.05))
    try:
        await host.start()
        for path, cause in (("/gone", "answered HTTP 404"), ("/moved", "HTTP 302 (redirects are not followed)")):
            caplog.clear()
            caplog.set_level(logging.INFO, logger=LOG)
            before = len(peer.requests)
            session = host.start_session(sender(peer.url(path)))
            await eventually(lambda s=session: not s.is_running, timeout=10, expected="error.communication")
            assert session.final_state == "failed"
            assert len(peer.requests) == before + 1  # one attempt, the redirect not followed
            assert any(cause in r.getMessage() and "after 1 attempt" in r.getMessage() for r in caplog.records)
    finally:
        await host.close()
        await peer.stop()


async def test_a_control_character_in_a_target_cannot_forge_a_log_line(caplog) -> None:
    host = host_for(RetryBudget())
    caplog.set_level(logging.INFO, logger=LOG)
    try:
        await host.start()
        doc = scxml('<state id="s"><onentry><send event="x" type="basichttp" '
                    'targetexpr="\'http://example.com/a\\nFORGED entry\'"/></onentry>'
                    '<transition event="error.communication" target="failed"/></state><final id="failed"/>')
        session = host.start_session(doc)
        await eventually(lambda: not session.is_running, timeout=10, expected="error.communication")
        assert session.final_state == "failed"
        messages = [r.getMessage() for r in caplog.records if r.name == LOG]
        assert messages and all("\n" not in m for m in messages), messages
        assert any("\\n" in m for m in messages)
    finally:
        await host.close()
