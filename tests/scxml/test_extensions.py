"""Custom executable content, event I/O processors and invoke types plug in through a registry."""

from __future__ import annotations

import pytest

from engine.scxml import (
    DEFAULT_REGISTRY,
    Action,
    DocumentError,
    Event,
    SessionHost,
    compile_document,
)
from tests.scxml.documents import NS

EXT = "urn:example:ext"


class Stamp(Action):
    """<x:stamp into="var" value="expr"/>: evaluates value and stores it."""

    __slots__ = ("into", "value")

    def __init__(self, el, compiler):
        self.line = el.sourceline
        if not el.get("into"):
            raise ValueError("needs an 'into' attribute")
        self.into = compiler.location(el, "into")
        self.value = compiler.expr(el, "value")

    def execute(self, s) -> None:
        s.datamodel.assign(self.into, s.evaluate(self.value))


class Recorder:
    """A custom event I/O processor that records what it is asked to send."""

    sent: list = []
    effect_kind = None

    def __init__(self, host):
        self.host = host

    async def start(self):
        pass

    async def close(self):
        pass

    def location(self, session):
        return f"recorder://{session.id}"

    def check(self, session, req):
        return None

    def send(self, session, req):
        Recorder.sent.append((req.name, req.target, dict(req.data or {})))
        session.deliver(Event("recorded", {"target": req.target}))


class EchoInvoker:
    """A custom invoke type: answers every forwarded event with ``echo.<name>``."""

    started: list = []
    cancelled: list = []

    def __init__(self, host):
        self.host = host

    def start(self, parent, invocation, *, src, content, data):
        invocation.handle = parent
        EchoInvoker.started.append((invocation.invokeid, src, dict(data or {})))
        parent.deliver(Event("echo.ready", invokeid=invocation.invokeid))

    def forward(self, invocation, event):
        invocation.handle.deliver(Event("echo." + event.name, invokeid=invocation.invokeid))

    def cancel(self, invocation):
        EchoInvoker.cancelled.append(invocation.invokeid)

    def save(self, invocation):
        return None

    def restore(self, invocation, saved):
        pass


@pytest.fixture
def registry():
    reg = DEFAULT_REGISTRY.copy()
    reg.register_action(EXT, "stamp", Stamp)
    reg.register_processor("urn:example:recorder", Recorder, "recorder")
    reg.register_invoker("urn:example:echo", EchoInvoker, "echo")
    Recorder.sent.clear()
    EchoInvoker.started.clear()
    EchoInvoker.cancelled.clear()
    return reg


def doc(body: str, registry):
    return compile_document(
        f'<scxml {NS} xmlns:x="{EXT}" datamodel="python"><datamodel><data id="v"/></datamodel>'
        f'{body}</scxml>', registry=registry,
    )


async def test_custom_action_runs(registry) -> None:
    d = doc('<state id="s"><onentry><x:stamp into="v" value="6 * 7"/></onentry></state>', registry)
    assert SessionHost(registry=registry).start_session(d).datamodel.variable("v") == 42


def test_custom_action_errors_and_unregistered_elements_are_load_errors(registry) -> None:
    with pytest.raises(DocumentError, match="needs an 'into' attribute"):
        doc('<state id="s"><onentry><x:stamp value="1"/></onentry></state>', registry)
    with pytest.raises(DocumentError, match="unknown executable content <stamp>"):
        doc('<state id="s"><onentry><x:stamp into="v" value="1"/></onentry></state>', DEFAULT_REGISTRY)


async def test_custom_processor_receives_sends(registry) -> None:
    d = doc(
        '<state id="s"><onentry><send type="recorder" event="hello" target="somewhere">'
        '<param name="n" expr="1"/></send></onentry>'
        '<transition event="recorded" target="done"/></state><final id="done"/>', registry,
    )
    host = SessionHost(registry=registry)
    session = host.start_session(d)
    assert Recorder.sent == [("hello", "somewhere", {"n": 1})]
    assert session.datamodel.variable("_ioprocessors")["recorder"]["location"] == f"recorder://{session.id}"
    import asyncio

    await asyncio.sleep(0.01)
    assert session.final_state == "done"


async def test_custom_invoker_starts_forwards_and_is_cancelled(registry) -> None:
    import asyncio

    d = doc(
        '<state id="s"><invoke type="echo" id="e1" src="urn:thing" autoforward="true">'
        '<param name="p" expr="2"/></invoke>'
        '<transition event="echo.ready"><send event="ping"/></transition>'
        '<transition event="echo.ping" target="done"/></state><final id="done"/>', registry,
    )
    session = SessionHost(registry=registry).start_session(d)
    for _ in range(5):
        await asyncio.sleep(0)
    assert EchoInvoker.started == [("e1", "urn:thing", {"p": 2})]
    assert session.final_state == "done"
    assert EchoInvoker.cancelled == ["e1"]


def test_unknown_invoke_type_is_a_load_error(registry) -> None:
    with pytest.raises(DocumentError, match="unknown invoke type 'teleport'") as info:
        doc('<state id="s">\n<invoke type="teleport"/></state>', registry)
    assert info.value.problems[0].line == 2
