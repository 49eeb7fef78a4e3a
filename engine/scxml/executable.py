"""Executable content, compiled once per document; each action runs against one session.

An action raises ``ExecutionError`` when it fails; the session then stops the enclosing block
and queues ``error.execution`` (W3C 4.9). Actions see their session as a ``ports.RunningSession``
(custom actions too), never as the concrete ``Session`` above them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from .datamodel import Code
from .errors import ExecutionError
from .events import AttrDict, Event
from .values import parse_delay

if TYPE_CHECKING:
    from .model import Document
    from .ports import Evaluates, RunningSession

log = logging.getLogger("engine.scxml.log")

SCXML_PROCESSOR = "http://www.w3.org/TR/scxml/#SCXMLEventProcessor"


class Action:
    """One element of executable content."""

    __slots__ = ("line",)

    def execute(self, s: RunningSession) -> None:
        raise NotImplementedError


class Raise(Action):
    __slots__ = ("event",)

    def __init__(self, event: str, line: int):
        self.event = event
        self.line = line

    def execute(self, s: RunningSession) -> None:
        s.raise_internal(Event(self.event, type="internal"))


class Log(Action):
    __slots__ = ("expr", "label")

    def __init__(self, label: str | None, expr: Code | None, line: int):
        self.label = label
        self.expr = expr
        self.line = line

    def execute(self, s: RunningSession) -> None:
        if self.expr is None:
            s.log_message(self.label, None, has_value=False)
        else:
            s.log_message(self.label, s.evaluate(self.expr))


class Assign(Action):
    __slots__ = ("expr", "factory", "location")

    def __init__(self, location: Code, expr: Code | None, factory: Callable[[], Any] | None, line: int):
        self.location = location
        self.expr = expr
        self.factory = factory
        self.line = line

    def execute(self, s: RunningSession) -> None:
        if self.expr is not None:
            value = s.evaluate(self.expr)
        elif self.factory is not None:
            value = self.factory()
        else:
            value = None
        s.datamodel.assign(self.location, value)


class If(Action):
    __slots__ = ("branches",)

    def __init__(self, branches: tuple[tuple[Code | None, tuple[Action, ...]], ...], line: int):
        self.branches = branches
        self.line = line

    def execute(self, s: RunningSession) -> None:
        for cond, block in self.branches:
            if cond is None or s.datamodel.test(cond):
                for action in block:
                    action.execute(s)
                return


class Foreach(Action):
    __slots__ = ("array", "block", "index", "item")

    def __init__(self, array: Code, item: str, index: str | None, block: tuple[Action, ...], line: int):
        self.array = array
        self.item = item
        self.index = index
        self.block = block
        self.line = line

    def execute(self, s: RunningSession) -> None:
        collection = s.evaluate(self.array)
        if isinstance(collection, (str, bytes, dict)) or not hasattr(collection, "__iter__"):
            raise ExecutionError(
                f"line {self.line}: foreach array {self.array.text!r} is not a sequence "
                f"({type(collection).__name__})"
            )
        # Sized before it is copied, so a huge collection is refused without being walked.
        try:
            size = len(collection)
        except (TypeError, OverflowError):  # unsized, or too big for an int (range(10**30))
            size = None
        if size is not None:
            s.reserve_iterations(size, self.line)
            items = list(collection)  # a shallow copy: the block may change the original
        else:
            room = s.foreach_room()
            items = list(islice(collection, room + 1))
            s.reserve_iterations(len(items), self.line, exact=len(items) <= room)
        for i, item in enumerate(items):
            s.datamodel.set_variable(self.item, item)
            if self.index is not None:
                s.datamodel.set_variable(self.index, i)
            for action in self.block:
                action.execute(s)
        if not items:
            # Still check the names so a bad item is reported even on an empty array.
            s.datamodel.set_variable(self.item, s.datamodel.variable(self.item))


class Script(Action):
    __slots__ = ("code",)

    def __init__(self, code: Code, line: int):
        self.code = code
        self.line = line

    def execute(self, s: RunningSession) -> None:
        s.datamodel.execute(self.code)


@dataclass(slots=True)
class Param:
    name: str
    expr: Code | None
    location: Code | None


@dataclass(slots=True)
class Content:
    """``<content>``: an expression, an inline value, or an inline SCXML document."""

    expr: Code | None = None
    factory: Callable[[], Any] | None = None
    document: Document | None = None

    def value(self, s: Evaluates) -> Any:
        if self.expr is not None:
            return s.evaluate(self.expr)
        if self.factory is not None:
            return self.factory()
        return None


def _put(data: AttrDict, key: str, value: Any, repeated: set[str]) -> None:
    """Repeated keys keep every value, in order, as a list."""
    if key in data:
        if key not in repeated:
            data[key] = [data[key]]
            repeated.add(key)
        data[key].append(value)
    else:
        data[key] = value


def build_data(
    s: Evaluates,
    namelist: tuple[Code, ...],
    params: tuple[Param, ...],
    content: Content | None,
) -> Any:
    """The ``_event.data`` of a send, invoke or donedata (W3C 5.7-5.9)."""
    if content is not None:
        return content.value(s)
    if not namelist and not params:
        return None
    data = AttrDict()
    repeated: set[str] = set()
    for code in namelist:
        _put(data, code.text.strip(), s.evaluate(code), repeated)
    for p in params:
        if p.expr is not None:
            value = s.evaluate(p.expr)
        elif p.location is not None:
            value = s.evaluate(p.location)
        else:
            value = None
        _put(data, p.name, value, repeated)
    return data


class SendRequest:
    """A send after evaluation: what to deliver, where, and through which processor."""

    __slots__ = ("data", "delay", "due", "explicit_id", "line", "name", "sendid", "target", "type")

    def __init__(self, name: str | None, target: str | None, type: str, sendid: str,
                 data: Any, delay: float, line: int, explicit_id: bool = False):
        self.name = name
        self.target = target
        self.type = type
        self.sendid = sendid
        self.data = data
        self.delay = delay
        self.due = 0.0
        self.line = line
        self.explicit_id = explicit_id  # only an author's id shows in _event.sendid (W3C 5.10.1)


class Send(Action):
    __slots__ = (
        "content",
        "delay",
        "delayexpr",
        "event",
        "eventexpr",
        "id",
        "idlocation",
        "namelist",
        "params",
        "target",
        "targetexpr",
        "type",
        "typeexpr",
    )

    def __init__(self, **kw: Any):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))
        self.line = kw["line"]

    def execute(self, s: RunningSession) -> None:
        sendid = self.id
        if sendid is None:
            sendid = s.new_sendid()
            if self.idlocation is not None:
                s.datamodel.assign(self.idlocation, sendid)
        try:
            self._send(s, sendid)
        except ExecutionError as e:
            e.sendid = sendid
            raise

    def _send(self, s: RunningSession, sendid: str) -> None:
        name = self.event if self.eventexpr is None else s.evaluate(self.eventexpr)
        target = self.target if self.targetexpr is None else s.evaluate(self.targetexpr)
        typ = self.type if self.typeexpr is None else s.evaluate(self.typeexpr)
        delay = self.delay or 0.0 if self.delayexpr is None else parse_delay(s.evaluate(self.delayexpr))
        data = build_data(s, self.namelist, self.params, self.content)
        if name is not None and not isinstance(name, str):
            name = str(name)
        if target is not None and not isinstance(target, str):
            raise ExecutionError(f"line {self.line}: send target must be a string, not {target!r}")
        s.dispatch(SendRequest(name, target or None, typ or SCXML_PROCESSOR, sendid, data, delay,
                               self.line, explicit_id=self.id is not None))


class Cancel(Action):
    __slots__ = ("sendid", "sendidexpr")

    def __init__(self, sendid: str | None, sendidexpr: Code | None, line: int):
        self.sendid = sendid
        self.sendidexpr = sendidexpr
        self.line = line

    def execute(self, s: RunningSession) -> None:
        sendid = self.sendid if self.sendidexpr is None else s.evaluate(self.sendidexpr)
        s.cancel_send(str(sendid))


@dataclass(slots=True)
class InvokeDef:
    """An ``<invoke>`` element, compiled; evaluated when its state has been entered."""

    state_id: str
    type: str | None
    typeexpr: Code | None
    src: str | None
    srcexpr: Code | None
    id: str | None
    idlocation: Code | None
    namelist: tuple[Code, ...]
    params: tuple[Param, ...]
    content: Content | None
    autoforward: bool
    finalize: tuple[Action, ...]
    order: int
    line: int
    column: int


@dataclass(slots=True)
class DoneData:
    namelist: tuple[Code, ...]
    params: tuple[Param, ...]
    content: Content | None
