"""``<invoke>``: evaluating an invoke element and the built-in SCXML invoker.

An invoker is registered per type URI (see ``registry``; it implements ``ports.Invoker``). It
receives an ``Invocation`` to fill in, forwards events into it (``#_<invokeid>`` and autoforward)
and cancels it when its state is exited. The SCXML invoker runs the child as another session of
the same host. Sessions and hosts are seen through ``ports`` (``InvokingSession``, ``InvokerHost``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lxml import etree

from .errors import DocumentError, ExecutionError, SessionLimitError
from .events import Event
from .executable import InvokeDef, build_data
from .model import Document, StateNode

if TYPE_CHECKING:
    from .ports import ChildSession, InvokerHost, InvokingSession
    from .ports import Invoker as InvokerPort

SCXML_INVOKE_TYPE = "http://www.w3.org/TR/scxml/"


class Invocation:
    """One running invocation, owned by the invoking session."""

    __slots__ = ("definition", "finished", "handle", "invokeid", "invoker", "state")

    def __init__(self, invokeid: str, state: StateNode, definition: InvokeDef, invoker: InvokerPort):
        self.invokeid = invokeid
        self.state = state
        self.definition = definition
        self.invoker = invoker
        self.handle: Any = None
        self.finished = False  # the child ended; the record lives until its state exits

    def forward(self, event: Event) -> None:
        """An event into the invoked child (``#_<invokeid>`` targets, autoforward)."""
        self.invoker.forward(self, event)

    def cancel(self) -> None:
        if not self.finished:
            self.invoker.cancel(self)


def start_invocation(parent: InvokingSession, state: StateNode, inv: InvokeDef,
                     invoker_for: Callable[[str], InvokerPort | None]) -> Invocation:
    """Evaluate an invoke element and start it (W3C 6.4); errors become error.execution.
    ``invoker_for`` gives the invoker of a type name or alias (None when unknown)."""
    typ = inv.type if inv.typeexpr is None else parent.evaluate(inv.typeexpr)
    invoker = invoker_for(typ or SCXML_INVOKE_TYPE)
    if invoker is None:
        raise ExecutionError(f"line {inv.line}: unknown invoke type {typ!r}")
    invokeid = inv.id
    if invokeid is None:
        invokeid = f"{state.id}.{parent.next_serial()}"
        if inv.idlocation is not None:
            parent.datamodel.assign(inv.idlocation, invokeid)
    src = inv.src if inv.srcexpr is None else parent.evaluate(inv.srcexpr)
    content: Any = None
    if inv.content is not None:
        content = inv.content.document or inv.content.value(parent)
    data = build_data(parent, inv.namelist, inv.params, None)
    invocation = Invocation(invokeid, state, inv, invoker)
    parent.add_invocation(invocation)
    try:
        invocation.invoker.start(parent, invocation, src=src, content=content, data=data)
    except BaseException:
        parent.drop_invocation(invokeid)
        raise
    return invocation


class ScxmlInvoker:
    """Runs an SCXML child document as a session of the same host."""

    def __init__(self, host: InvokerHost):
        self.host = host

    def start(self, parent: InvokingSession, invocation: Invocation, *, src: Any, content: Any,
              data: Any) -> None:
        doc = self._document(parent, src, content, invocation.definition)
        limit = self.host.limits.max_invoke_depth
        if parent.depth + 1 > limit:
            raise SessionLimitError(
                f"invoke depth limit of {limit} reached at line {invocation.definition.line} "
                f"(a document invoking itself without end?)"
            )
        child = self.host.create_session(
            doc, parent=parent, invokeid=invocation.invokeid, data=dict(data) if data else None
        )
        invocation.handle = child
        child.start()

    def _document(self, parent: InvokingSession, src: Any, content: Any, inv: InvokeDef) -> Document:
        if isinstance(content, Document):
            return content
        try:
            if content is not None:
                if isinstance(content, etree._Element):
                    content = etree.tostring(content)
                if not isinstance(content, (str, bytes)):
                    raise ExecutionError(f"line {inv.line}: invoke content is not an SCXML document")
                return self.host.compile_child(content, parent.doc)
            if src:
                return self.host.load_child(str(src), parent.doc)
        except DocumentError as e:
            raise ExecutionError(f"line {inv.line}: invoked document is invalid: {e}") from e
        raise ExecutionError(f"line {inv.line}: <invoke> needs src, srcexpr or <content>")

    def forward(self, invocation: Invocation, event: Event) -> None:
        child = invocation.handle
        if child is not None:
            self.host.route_event(None, child, event)

    def cancel(self, invocation: Invocation) -> None:
        child: ChildSession | None = invocation.handle
        if child is not None:
            child.cancel()

    def save(self, invocation: Invocation) -> None:
        """Nothing: the child is stored as a session of its own and found again by its id."""
        return None

    def restore(self, invocation: Invocation, saved: Any) -> None:
        """Nothing to take back (see ``save``): the rebuilt session links the rebuilt child."""
