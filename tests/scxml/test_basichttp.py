"""The Basic HTTP Event I/O Processor against real loopback peers."""

from __future__ import annotations

from functools import partial

from aiohttp import ClientSession, web

from engine.scxml import BASIC_HTTP, DEFAULT_REGISTRY, BasicHttpProcessor, SessionHost
from engine.scxml.basichttp import RetryBudget
from engine.urlpolicy import UrlPolicy
from tests.scxml.documents import scxml
from tests.support.eventually import eventually


def loopback_host(**options) -> SessionHost:
    """A host whose Basic HTTP sends may reach loopback peers: allowed explicitly, as a
    deployment would have to (the default policy refuses them)."""
    registry = DEFAULT_REGISTRY.copy()
    policy = UrlPolicy(networks=["127.0.0.0/8"])
    registry.register_processor(BASIC_HTTP, partial(BasicHttpProcessor, policy=policy, **options), "basichttp")
    return SessionHost(registry=registry)


async def test_send_posts_a_form_to_a_real_receiver() -> None:
    received: list[tuple[str, dict]] = []

    async def handler(request: web.Request) -> web.Response:
        received.append((request.content_type, dict(await request.post())))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        doc = scxml(
            '<datamodel><data id="who" expr="\'ann\'"/></datamodel>'
            f'<state id="s"><onentry><send event="hello" namelist="who" target="http://127.0.0.1:{port}/hook" '
            'type="http://www.w3.org/TR/scxml/#BasicHTTPEventProcessor"/></onentry></state>'
        )
        host = loopback_host()
        await host.start()
        host.start_session(doc)
        await eventually(lambda: received, timeout=5, expected="the POST received")
        assert received == [("application/x-www-form-urlencoded", {"_scxmleventname": "hello", "who": "ann"})]
        await host.close()
    finally:
        await runner.cleanup()


async def test_unreachable_target_raises_error_communication() -> None:
    doc = scxml(
        '<state id="s"><onentry><send event="x" target="http://127.0.0.1:9/nothing" type="basichttp"/>'
        '</onentry><transition event="error.communication" target="ok"/></state><final id="ok"/>'
    )
    host = loopback_host(retry=RetryBudget(attempts=3, seconds=1.0, first_delay=0.05))
    await host.start()
    session = host.start_session(doc)
    await eventually(lambda: not session.is_running, timeout=15, expected="the session finished")
    assert session.final_state == "ok"
    await host.close()


async def test_external_post_becomes_an_event_and_unknown_session_is_404() -> None:
    doc = scxml('<datamodel><data id="got"/></datamodel><state id="s">'
                '<transition event="order.placed" target="done"><assign location="got" expr="_event.data"/>'
                '</transition></state><final id="done"/>')
    host = SessionHost()
    await host.start()
    session = host.start_session(doc)
    location = session.datamodel.variable("_ioprocessors")["basichttp"]["location"]
    async with ClientSession() as client:
        async with client.post(location, data={"_scxmleventname": "order.placed", "qty": "3", "sku": "A1"}) as r:
            assert r.status == 200
        async with client.post(location.rsplit("/", 1)[0] + "/nobody", data={}) as r:
            assert r.status == 404
    await eventually(lambda: not session.is_running, timeout=5, expected="the session finished")
    assert session.final_state == "done"
    assert session.datamodel.variable("got") == {"qty": 3, "sku": "A1"}
    await host.close()
