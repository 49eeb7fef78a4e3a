"""The ports between the interpreter's layers: what a registry accepts as a processor or an invoker,
the standard registry built on request, and the concrete session and host filling the ports."""

from __future__ import annotations

from functools import partial

import pytest

import engine.scxml
from engine.scxml import (
    BASIC_HTTP,
    DEFAULT_REGISTRY,
    SCXML_INVOKE_TYPE,
    SCXML_PROCESSOR,
    Registry,
    Session,
    SessionHost,
    compile_document,
    standard_registry,
)
from engine.scxml.clock import Clock, ScaledClock
from engine.scxml.ports import (
    AddressedSession,
    EventProcessor,
    InvokerHost,
    InvokingSession,
    ProcessorHost,
    RunningSession,
    protocol_members,
)
from engine.scxml.session import SessionHostPort
from tests.scxml.documents import NS, scxml
from tests.support.eventually import eventually


class Quiet:
    """A complete event I/O processor that records what the host asks of it."""

    effect_kind = None
    calls: list[str] = []

    def __init__(self, host):
        self.host = host

    async def start(self):
        Quiet.calls.append("start")

    async def close(self):
        Quiet.calls.append("close")

    def location(self, session):
        return None

    def check(self, session, req):
        return None

    def send(self, session, req):
        Quiet.calls.append(f"send {req.name}")


class NoLifecycle:
    """An older processor: sends, but has neither ``effect_kind`` nor ``start``/``close``."""

    def __init__(self, host):
        self.host = host

    def location(self, session):
        return None

    def check(self, session, req):
        return None

    def send(self, session, req):
        return None


class Ticketing:
    """An invoker whose invocations live outside the engine, known by a ticket it saves."""

    def __init__(self, host):
        self.host = host

    def start(self, parent, invocation, *, src, content, data):
        invocation.handle = f"ticket-{invocation.invokeid}"

    def forward(self, invocation, event):
        return None

    def cancel(self, invocation):
        return None

    def save(self, invocation):
        return {"ticket": invocation.handle}

    def restore(self, invocation, saved):
        invocation.handle = saved["ticket"]


class NoSaving:
    """An invoker without ``save``/``restore``: its invocations could not survive a restart."""

    def __init__(self, host):
        self.host = host

    def start(self, parent, invocation, *, src, content, data):
        return None

    def forward(self, invocation, event):
        return None

    def cancel(self, invocation):
        return None


def test_a_processor_class_without_the_protocol_members_is_refused_at_registration() -> None:
    registry = Registry()
    with pytest.raises(TypeError, match=r"event I/O processor NoLifecycle lacks close, effect_kind, start"):
        registry.register_processor("urn:example:old", NoLifecycle, "old")
    with pytest.raises(TypeError, match="NoLifecycle lacks"):
        registry.register_processor("urn:example:old", partial(NoLifecycle), "old")
    assert registry.processor_type("old") is None and "urn:example:old" not in registry.processors
    registry.register_processor("urn:example:quiet", Quiet, "quiet")
    assert registry.processor_type("quiet") == "urn:example:quiet"


def test_an_invoker_class_without_save_and_restore_is_refused_at_registration() -> None:
    registry = Registry()
    with pytest.raises(TypeError, match=r"invoker NoSaving lacks restore, save \(the Invoker protocol"):
        registry.register_invoker("urn:example:nosave", NoSaving)
    assert registry.invoker_type("urn:example:nosave") is None
    registry.register_invoker("urn:example:ticket", Ticketing, "ticket")
    assert registry.invoker_type("ticket") == "urn:example:ticket"


def test_a_factory_function_is_checked_when_the_host_builds_its_product() -> None:
    registry = Registry()
    registry.register_processor("urn:example:old", lambda host: NoLifecycle(host), "old")
    registry.register_invoker("urn:example:nosave", lambda host: NoSaving(host), "nosave")
    host = SessionHost(registry=registry)
    with pytest.raises(TypeError, match="event I/O processor NoLifecycle lacks close, effect_kind, start"):
        host.processor_for("old")
    with pytest.raises(TypeError, match="invoker NoSaving lacks restore, save"):
        host.invoker_for("nosave")


def test_a_processor_with_effects_needs_perform() -> None:
    class Effects(Quiet):
        effect_kind = "example"

    registry = Registry()
    registry.register_processor("urn:example:effects", Effects)
    with pytest.raises(TypeError, match="effects of kind 'example' but no perform"):
        SessionHost(registry=registry).processor_for("urn:example:effects")

    class Performing(Effects):
        def perform(self, session_id, payload):
            return None

    registry.register_processor("urn:example:effects", Performing)
    host = SessionHost(registry=registry)
    processor = host.processor_for("urn:example:effects")
    assert isinstance(processor, EventProcessor)
    assert host.effect_handlers["example"] == processor.perform


async def test_the_host_starts_and_closes_every_processor() -> None:
    Quiet.calls.clear()
    registry = Registry()
    registry.register_processor("urn:example:quiet", Quiet, "quiet")
    host = SessionHost(registry=registry)
    await host.start()
    host.start_session(scxml('<state id="s"><onentry><send type="quiet" event="hi"/></onentry></state>',
                             registry=registry))
    await host.close()
    assert Quiet.calls == ["start", "send hi", "close"]


def test_standard_registries_are_independent_and_hold_the_standard_types() -> None:
    first, second = standard_registry(), standard_registry()
    assert first is not second and first is not DEFAULT_REGISTRY
    for registry in (first, second, DEFAULT_REGISTRY):
        assert set(registry.processors) == {SCXML_PROCESSOR, BASIC_HTTP}
        assert set(registry.invokers) == {SCXML_INVOKE_TYPE}
        assert registry.processor_type("basichttp") == BASIC_HTTP
        assert registry.invoker_type("scxml") == SCXML_INVOKE_TYPE
        assert set(registry.datamodels) >= {"python", "null"}
    first.register_processor("urn:example:quiet", Quiet, "quiet")
    first.register_invoker("urn:example:ticket", Ticketing, "ticket")
    assert second.processor_type("quiet") is None and second.invoker_type("ticket") is None
    assert DEFAULT_REGISTRY.processor_type("quiet") is None and DEFAULT_REGISTRY.invoker_type("ticket") is None


def test_importing_the_package_registers_nothing() -> None:
    """A bare ``Registry`` stays bare: the standard types come only from ``standard_registry``."""
    assert engine.scxml.DEFAULT_REGISTRY is DEFAULT_REGISTRY
    bare = Registry()
    assert bare.processors == {} and bare.invokers == {}
    assert set(bare.datamodels) == {"python", "null"}


async def test_an_invokers_saved_state_comes_back_through_restore() -> None:
    registry = standard_registry()
    registry.register_invoker("urn:example:ticket", Ticketing, "ticket")
    doc = scxml('<state id="s"><invoke type="ticket" id="t1"/>'
                '<transition event="go" target="end"/></state><final id="end"/>', registry=registry)
    host = SessionHost(registry=registry)
    session = host.start_session(doc)
    state = session.to_state()
    assert [(i.invokeid, i.child, i.handle) for i in state.invocations] == [("t1", None, {"ticket": "ticket-t1"})]

    other = SessionHost(registry=registry)
    copy = Session.from_state(other, doc, session.id, state)
    copy.link_invocations(state.invocations, {})
    invocation = copy.invocation("t1")
    assert invocation is not None and invocation.handle == "ticket-t1"
    assert isinstance(invocation.invoker, Ticketing) and invocation.invoker.host is other
    await host.close()
    await other.close()


def test_the_concrete_session_and_host_fill_every_port_they_are_used_through() -> None:
    host = SessionHost()
    session = host.start_session(compile_document(f'<scxml {NS} datamodel="python"><state id="s"/></scxml>'))
    for port in (RunningSession, AddressedSession, InvokingSession):
        missing = [name for name in protocol_members(port) if not hasattr(session, name)]
        assert not missing, f"Session lacks {missing} of {port.__name__}"
    for port in (ProcessorHost, InvokerHost, SessionHostPort):
        missing = [name for name in protocol_members(port) if not hasattr(host, name)]
        assert not missing, f"SessionHost lacks {missing} of {port.__name__}"
    # Inherited members count: an action evaluates through the session it runs in.
    assert "evaluate" in protocol_members(RunningSession)
    assert {"datamodel", "dispatch", "id"} <= set(protocol_members(RunningSession))


def test_the_scxml_processor_and_invoker_are_ports_of_their_kind() -> None:
    host = SessionHost()
    assert isinstance(host.processor_for("scxml"), EventProcessor)
    invoker = host.invoker_for("scxml")
    assert invoker is not None and invoker.save(None) is None  # type: ignore[arg-type]
    assert host.invoker_for("urn:example:nothing") is None and host.processor_for("nothing") is None


def test_every_clock_has_a_scale() -> None:
    assert Clock().scale == 1.0
    assert ScaledClock(60.0).scale == 60.0


async def test_a_delayed_send_whose_type_is_gone_becomes_error_execution() -> None:
    """A rebuilt session in a host whose registry no longer has the type of a pending send."""
    registry = standard_registry()
    registry.register_processor("urn:example:quiet", Quiet, "quiet")
    doc = scxml('<datamodel><data id="why"/></datamodel>'
                '<state id="s"><onentry><send type="quiet" event="later" delay="1s"/></onentry>'
                '<transition event="error.execution" target="end">'
                '<assign location="why" expr="_event.data.message"/></transition></state>'
                '<final id="end"/>', registry=registry)
    host = SessionHost(registry=registry)
    state = host.start_session(doc).to_state()
    await host.close()
    state.pending[0].due = 0.0  # overdue: fires as soon as it is re-armed
    other = SessionHost(registry=standard_registry())
    copy = Session.from_state(other, doc, "rebuilt", state)
    other.sessions[copy.id] = copy
    copy.resume()
    await eventually(lambda: copy.final_state, timeout=5, expected="the rebuilt session finished")
    assert copy.final_state == "end"
    assert "unknown send type 'quiet'" in copy.variables["why"]


def test_the_builtin_datamodel_table_is_read_only_and_each_registry_owns_its_kinds() -> None:
    from engine.scxml.datamodel import BUILTIN_DATAMODELS

    with pytest.raises(TypeError):
        BUILTIN_DATAMODELS["other"] = BUILTIN_DATAMODELS["null"]  # type: ignore[index]
    first, second = standard_registry(), standard_registry()
    assert first.datamodel("python") is first.datamodel("python")
    assert first.datamodel("python") is not second.datamodel("python")
