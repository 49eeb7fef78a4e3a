"""Executable content that callback flows use to report to the callback service.

Namespace ``urn:callback-engine:callback`` (prefix ``cb`` by convention):

* ``<cb:notify event="_cbe_on_dial_init"/>`` fires a status event; its attributes are taken from
  the session's data (``c_dialed_number``...) and the callback record (``_customer_number``...).
  ``<param>`` children add or override values.
* ``<cb:update state="ROUTING"/>`` moves the record through its lifecycle (``stateexpr`` too);
  ``<param>`` children set record keys (``_access_code``...).
* ``<cb:complete reason="AGENT_CONNECTED"/>`` completes it (``reasonexpr`` too).

Editing a flow changes which events fire and when, with no code change.

The actions hand what they report to a ``ReportDesk``: it exists before the registry that
compiles flows (so before the session manager), and the callback service, built after the
manager, serves it when it is built. A flow run with no service behind the desk (a validation
run, an engine without callbacks) gets ``error.execution``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from ..scxml import Action, ExecutionError, Registry
from ..scxml.compiler import is_scxml, local_name
from .event_catalog import ALL_EVENTS
from .vocabulary import FLOW_STATES, CompletionReason

if TYPE_CHECKING:
    from lxml import etree

    from ..scxml import Session
    from ..scxml.compiler import Compiler

NS = "urn:callback-engine:callback"
# Events the callback service raises in its flows (``cb.cancel``, ``cb.updated``); reserved to it.
EVENT_PREFIXES = ("cb.",)
STATES = FLOW_STATES  # what <cb:update> may set
REASONS = tuple(CompletionReason)  # what <cb:complete> may give


class FlowReports(Protocol):
    """What the actions report to (the callback service)."""

    def flow_event(self, session: Session, name: str, extra: dict[str, Any] | None = None) -> None: ...

    def flow_update(self, session: Session, state: str | None, reason: str | None,
                    keys: dict[str, Any]) -> None: ...


class ReportDesk:
    """Where the actions of one engine's flows report; served by one callback service."""

    def __init__(self) -> None:
        self._reports: FlowReports | None = None

    def serve(self, reports: FlowReports) -> None:
        if self._reports is not None:
            raise RuntimeError("this report desk is already served by a callback service")
        self._reports = reports

    def reports(self) -> FlowReports:
        if self._reports is None:
            raise ExecutionError("this engine has no callback service")
        return self._reports


class _WithParams(Action):
    __slots__ = ("desk", "params")

    def __init__(self, el: etree._Element, compiler: Compiler, desk: ReportDesk):
        self.desk = desk

    def _compile_params(self, el: etree._Element, compiler: Compiler) -> None:
        params = []
        for child in el:
            if is_scxml(child) and local_name(child)[1] == "param" and child.get("name"):
                params.append((child.get("name"), compiler.expr(child, "expr")))
            else:
                raise ValueError(f"only <param name=... expr=...> may appear inside, not <{local_name(child)[1]}>")
        self.params = tuple(params)

    def _values(self, s: Session) -> dict[str, Any]:
        return {name: (s.evaluate(expr) if expr is not None else None) for name, expr in self.params}


class Notify(_WithParams):
    __slots__ = ("event",)

    def __init__(self, el: etree._Element, compiler: Compiler, desk: ReportDesk):
        super().__init__(el, compiler, desk)
        self.line = el.sourceline or 0
        self.event = el.get("event")
        if not self.event:
            raise ValueError("needs an event attribute")
        if self.event not in ALL_EVENTS and not self.event.startswith("_cbe_"):
            raise ValueError(f"unknown status event {self.event!r}")
        self._compile_params(el, compiler)

    def execute(self, s: Session) -> None:
        self.desk.reports().flow_event(s, self.event, self._values(s))


class Update(_WithParams):
    __slots__ = ("state", "stateexpr")

    def __init__(self, el: etree._Element, compiler: Compiler, desk: ReportDesk):
        super().__init__(el, compiler, desk)
        self.line = el.sourceline or 0
        self.state = el.get("state")
        self.stateexpr = compiler.expr(el, "stateexpr")
        if self.state is not None and self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {self.state!r}")
        self._compile_params(el, compiler)
        if self.state is None and self.stateexpr is None and not self.params:
            raise ValueError("needs state, stateexpr or <param> children")

    def execute(self, s: Session) -> None:
        state = self.state if self.stateexpr is None else s.evaluate(self.stateexpr)
        if state is not None and state not in STATES:
            raise ExecutionError(f"line {self.line}: state {state!r} is not one of {', '.join(STATES)}")
        try:
            self.desk.reports().flow_update(s, state, None, self._values(s))
        except ValueError as e:
            raise ExecutionError(f"line {self.line}: {e}") from e


class Complete(Action):
    __slots__ = ("desk", "reason", "reasonexpr")

    def __init__(self, el: etree._Element, compiler: Compiler, desk: ReportDesk):
        self.desk = desk
        self.line = el.sourceline or 0
        self.reason = el.get("reason")
        self.reasonexpr = compiler.expr(el, "reasonexpr")
        if (self.reason is None) == (self.reasonexpr is None):
            raise ValueError("needs exactly one of reason and reasonexpr")
        if self.reason is not None and self.reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(REASONS)}, not {self.reason!r}")

    def execute(self, s: Session) -> None:
        reason = self.reason if self.reasonexpr is None else s.evaluate(self.reasonexpr)
        if reason not in REASONS:
            raise ExecutionError(f"line {self.line}: reason {reason!r} is not one of {', '.join(REASONS)}")
        try:
            self.desk.reports().flow_update(s, None, reason, {})
        except ValueError as e:
            raise ExecutionError(f"line {self.line}: {e}") from e


def register(registry: Registry, desk: ReportDesk | None = None) -> None:
    """Make the ``cb:`` actions available to documents compiled with ``registry``; they report
    to ``desk`` (a fresh, unserved one when none is given: enough to compile and validate)."""
    desk = desk if desk is not None else ReportDesk()
    registry.register_action(NS, "notify", partial(Notify, desk=desk))
    registry.register_action(NS, "update", partial(Update, desk=desk))
    registry.register_action(NS, "complete", partial(Complete, desk=desk))
