"""The narrow ports between the interpreter's layers.

Executable content, event I/O processors and invokers sit below the session and the host, yet act
on a running session and on the host that carries its events. They see them only through the
Protocols here, so they import neither ``session`` nor ``host`` (the ``scxml-layers`` contract in
``.importlinter``); ``Session`` and ``SessionHost`` satisfy them structurally. (What the session
itself needs of its host is ``session.SessionHostPort``: it names the transition cache, which
nothing below the session may reach.)

``EventProcessor`` and ``Invoker`` are also what a registry accepts: a factory whose product lacks
one of their members is refused when it is registered (or, for a factory that is not a class, when
a host builds it), instead of being probed for the member at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .datamodel import DataModel
    from .events import Event
    from .executable import SendRequest
    from .invokers import Invocation
    from .limits import Limits
    from .model import Document


# -- what executable content needs of the session it runs in ----------------------------------
class Evaluates(Protocol):
    """Whatever evaluates expressions of its document (``<content>``, ``<param>`` and namelist
    values are built against it)."""

    def evaluate(self, expr: Any) -> Any: ...


class RunningSession(Evaluates, Protocol):
    """A session in the middle of a macrostep, as its actions see it."""

    id: str
    datamodel: DataModel

    def raise_internal(self, event: Event) -> None: ...

    def log_message(self, label: str | None, value: Any, has_value: bool = True) -> None: ...

    def reserve_iterations(self, count: int, line: int, exact: bool = True) -> None: ...

    def foreach_room(self) -> int: ...

    def over_budget(self, message: str) -> NoReturn: ...

    def new_sendid(self) -> str: ...

    def dispatch(self, req: SendRequest) -> None: ...

    def cancel_send(self, sendid: str) -> None: ...


# -- event I/O processors ----------------------------------------------------------------------
class AddressedSession(Protocol):
    """A session as an event I/O processor sees it: something to deliver events to and from."""

    id: str
    invokeid: str | None
    cancel_requested: bool

    @property
    def is_running(self) -> bool: ...

    @property
    def parent(self) -> AddressedSession | None: ...

    def deliver(self, event: Event) -> None: ...

    def post_internal(self, event: Event) -> None: ...

    def post_error(self, name: str, message: str, sendid: str | None = None) -> None: ...

    def invocation(self, invokeid: str) -> Invocation | None: ...


class ProcessorHost(Protocol):
    """What an event I/O processor needs of the host that built it."""

    @property
    def sessions(self) -> Mapping[str, AddressedSession]: ...

    def route_event(self, sender: Any, target: Any, event: Event) -> None: ...

    def hand_over(self, sender: Any, session_id: str, event: Event) -> bool: ...

    def emit(self, session: Any, kind: str, payload: dict[str, Any], *, durable: bool = True) -> None: ...

    def refuses_external(self, name: str) -> str | None: ...


@runtime_checkable
class EventProcessor(Protocol):
    """An Event I/O Processor (W3C 6.2, Appendix C). ``effect_kind`` names the effects it leaves to
    the host to record and carry out (None: its sends never leave the engine); a processor with
    one also ``PerformsEffects``. ``start``/``close`` bracket the host's life (Basic HTTP listens)."""

    @property
    def effect_kind(self) -> str | None: ...

    def location(self, session: AddressedSession) -> str | None: ...

    def check(self, session: AddressedSession, req: SendRequest) -> None: ...

    def send(self, session: AddressedSession, req: SendRequest) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class PerformsEffects(Protocol):
    """A processor whose sends are effects: the host calls ``perform`` once it recorded one; it may
    return an awaitable that completes when the effect is done."""

    def perform(self, session_id: str, payload: dict[str, Any]) -> Any: ...


# -- invocations --------------------------------------------------------------------------------
class ChildSession(Protocol):
    """A session an invoker started for an invocation."""

    def start(self) -> Any: ...

    def cancel(self) -> None: ...


class InvokingSession(Evaluates, Protocol):
    """The session that evaluates an ``<invoke>``, as the invocation machinery sees it."""

    depth: int
    doc: Document
    datamodel: DataModel

    def next_serial(self) -> int: ...

    def add_invocation(self, invocation: Invocation) -> None: ...

    def drop_invocation(self, invokeid: str) -> None: ...


class InvokerHost(Protocol):
    """What an invoker needs of the host that built it."""

    limits: Limits

    def create_session(self, doc: Document, *, data: dict[str, Any] | None = None, parent: Any = None,
                       invokeid: str | None = None, session_id: str | None = None) -> ChildSession: ...

    def compile_child(self, text: str | bytes, parent: Document) -> Document: ...

    def load_child(self, src: str, parent: Document) -> Document: ...

    def route_event(self, sender: Any, target: Any, event: Event) -> None: ...


@runtime_checkable
class Invoker(Protocol):
    """An ``<invoke type>`` (W3C 6.4): one per host, serving every invocation of its type.

    ``save`` gives what must be stored of an invocation that is not a session of the host (JSON
    values; None for nothing) and ``restore`` takes it back when a stored session is rebuilt."""

    def start(self, parent: InvokingSession, invocation: Invocation, *, src: Any, content: Any,
              data: Any) -> None: ...

    def forward(self, invocation: Invocation, event: Event) -> None: ...

    def cancel(self, invocation: Invocation) -> None: ...

    def save(self, invocation: Invocation) -> Any: ...

    def restore(self, invocation: Invocation, saved: Any) -> None: ...


def protocol_members(port: type) -> tuple[str, ...]:
    """The names a Protocol declares, itself or through the protocols it extends: its methods,
    properties and annotated attributes."""
    names: set[str] = set()
    for cls in port.__mro__:
        if cls is object or cls.__module__ == "typing":
            continue
        own = vars(cls)
        names.update(n for n in own if not n.startswith("_"))
        names.update(own.get("__annotations__", {}))
    return tuple(sorted(names))


def factory_class(factory: Any) -> type | None:
    """The class a factory builds when it shows it before it is called (a class, or a
    ``functools.partial`` of one); None for a plain function, whose product is checked once built."""
    target = factory.func if isinstance(factory, partial) else factory
    return target if isinstance(target, type) else None


def require(candidate: Any, port: type, what: str) -> None:
    """Refuse ``candidate`` (a class or an instance) with a ``TypeError`` naming every member of the
    Protocol ``port`` it lacks."""
    missing = [name for name in protocol_members(port) if not hasattr(candidate, name)]
    if missing:
        name = candidate.__qualname__ if isinstance(candidate, type) else type(candidate).__qualname__
        raise TypeError(f"{what} {name} lacks {', '.join(missing)} (the {port.__name__} protocol of "
                        f"engine.scxml.ports asks for {', '.join(protocol_members(port))})")
