"""Session snapshots: everything a session needs to resume after a restart, as JSON.

A snapshot is taken between macrosteps. It holds the configuration, the author's data, history,
the queues, pending delayed sends with their absolute due times and the invocations. Values are
JSON with a few tagged types (tuples, sets, bytes, XML elements, events); a value nothing can
encode (a function defined by a script, say) is marked lost and, on restore, taken again from
the document's top-level scripts when they define it.
"""

from __future__ import annotations

import base64
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from lxml import etree

from .events import AttrDict, Event
from .executable import SendRequest
from .session import RUNNING, InPredicate, Session

if TYPE_CHECKING:
    from .host import SessionHost
    from .model import Document

log = logging.getLogger("engine.scxml.snapshot")
TAG = "$t"
FORMAT = 1


class Unencodable(ValueError):
    pass


def encode_value(value: Any) -> Any:
    """A JSON-ready form of a datamodel value; raises ``Unencodable``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, AttrDict):
        return {TAG: "attrdict", "v": {str(k): encode_value(v) for k, v in value.items()}}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: encode_value(v) for k, v in value.items()}
        return {TAG: "dict", "v": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [encode_value(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {TAG: "set", "v": [encode_value(v) for v in value]}
    if isinstance(value, bytes):
        return {TAG: "bytes", "v": base64.b64encode(value).decode()}
    if isinstance(value, etree._Element):
        return {TAG: "xml", "v": etree.tostring(value, encoding="unicode")}
    if isinstance(value, Event):
        return {TAG: "event", "v": encode_event(value)}
    raise Unencodable(f"cannot store a {type(value).__name__}")


def decode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {k: decode_value(v) for k, v in value.items()}
    v = value["v"]
    if tag == "attrdict":
        return AttrDict({k: decode_value(x) for k, x in v.items()})
    if tag == "dict":
        return {_hashable(decode_value(k)): decode_value(x) for k, x in v}
    if tag == "tuple":
        return tuple(decode_value(x) for x in v)
    if tag == "set":
        return {_hashable(decode_value(x)) for x in v}
    if tag == "bytes":
        return base64.b64decode(v)
    if tag == "xml":
        return etree.fromstring(v, etree.XMLParser(resolve_entities=False, no_network=True))
    if tag == "event":
        return decode_event(v)
    raise ValueError(f"unknown stored type {tag!r}")


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def encode_event(event: Event) -> dict[str, Any]:
    return {
        "name": event.name, "data": encode_value(event.data), "type": event.type,
        "sendid": event.sendid, "origin": event.origin, "origintype": event.origintype,
        "invokeid": event.invokeid, "raw": event._raw,
    }


def decode_event(d: dict[str, Any]) -> Event:
    return Event(
        d["name"], decode_value(d.get("data")), type=d.get("type", "external"),
        sendid=d.get("sendid"), origin=d.get("origin"), origintype=d.get("origintype"),
        invokeid=d.get("invokeid"), raw=d.get("raw"),
    )


def encode_data(session: Session) -> tuple[dict[str, Any], list[str]]:
    """The author's variables, and the names of those that could not be stored."""
    out: dict[str, Any] = {}
    lost: list[str] = []
    for name, value in session.dm.user_data(session.store).items():
        try:
            out[name] = encode_value(value)
        except Unencodable:
            lost.append(name)
    return out, lost


def snapshot(session: Session) -> dict[str, Any]:
    """A JSON-ready snapshot of a session between macrosteps."""
    data, lost = encode_data(session)
    pending = []
    for req in session.pending_sends():
        pending.append({
            "name": req.name, "target": req.target, "type": req.type, "sendid": req.sendid,
            "data": encode_value(req.data), "due": req.due, "line": req.line,
            "explicit": req.explicit_id,
        })
    invocations = []
    for inv in (session._invocations or {}).values():
        handle = inv.handle
        invocations.append({
            "invokeid": inv.invokeid, "state": inv.state.id,
            "index": inv.state.invokes.index(inv.definition),
            "child": handle.id if isinstance(handle, Session) else None,
            "handle": None if isinstance(handle, Session) else _invoker_state(inv),
            "finished": inv.finished,
        })
    return {
        "format": FORMAT,
        "status": session.status,
        "configuration": [s.id for s in session.configuration],
        "data": data,
        "lost": lost,
        "history": {k: [s.id for s in v] for k, v in (session._history or {}).items()},
        "internal": [encode_event(e) for e in session._internal],
        "external": [encode_event(e) for e in (session._external or ())],
        "pending": pending,
        "invocations": invocations,
        "late_done": sorted(session._late_done or ()),
        "sendseq": session._sendseq,
        "parent": session.parent.id if session.parent is not None else None,
        "invokeid": session.invokeid,
        "final_ids": session.final_ids,
        "done_data": _safe(session.done_data),
        "error": session.error,
        "cancel_requested": session.cancel_requested,
    }


def bare_snapshot(session: Session) -> dict[str, Any]:
    """The snapshot of a session whose own state could not be encoded (it has been failed for
    that): its status, error and final states, without data, queues or timers."""
    return {
        "format": FORMAT, "status": session.status, "configuration": [], "data": {}, "lost": [],
        "history": {}, "internal": [], "external": [], "pending": [], "invocations": [],
        "late_done": [], "sendseq": session._sendseq,
        "parent": session.parent.id if session.parent is not None else None,
        "invokeid": session.invokeid, "final_ids": session.final_ids, "done_data": None,
        "error": session.error, "cancel_requested": session.cancel_requested,
    }


def _safe(value: Any) -> Any:
    try:
        return encode_value(value)
    except Unencodable:
        return None


def _invoker_state(inv: Any) -> Any:
    saver = getattr(inv.invoker, "save", None)
    return saver(inv) if saver is not None else None


def restore(host: SessionHost, doc: Document, session_id: str, snap: dict[str, Any],
            parent: Session | None = None) -> Session:
    """Rebuild a session from a snapshot; timers are re-armed by ``resume``.

    Invocations of SCXML children are linked by ``link_children`` once every session of the
    host has been rebuilt.
    """
    if snap.get("format") != FORMAT:
        raise ValueError(f"unsupported snapshot format {snap.get('format')!r}")
    session = Session(host, doc, session_id, parent=parent, invokeid=snap.get("invokeid"))
    session.status = snap["status"]
    by_id = doc.by_id
    session.configuration = {by_id[s] for s in snap["configuration"]}
    data = {k: decode_value(v) for k, v in snap["data"].items()}
    if snap.get("lost"):
        data.update(_recover_lost(session, snap["lost"]))
    session.store.update(data)
    if snap["history"]:
        session._history = {k: [by_id[s] for s in v] for k, v in snap["history"].items()}
    session._internal = [decode_event(e) for e in snap["internal"]]
    if snap["external"]:
        session._external = deque(decode_event(e) for e in snap["external"])
    session._late_done = set(snap["late_done"]) or None
    session._sendseq = snap["sendseq"]
    session.final_ids = snap.get("final_ids") or []
    session.done_data = decode_value(snap.get("done_data"))
    session.error = snap.get("error")
    session.cancel_requested = snap.get("cancel_requested", False)
    session._restore = {"pending": snap["pending"], "invocations": snap["invocations"]}
    return session


def _recover_lost(session: Session, names: list[str]) -> dict[str, Any]:
    """Functions and classes come back by running the top-level scripts in a scratch store."""
    if not session.doc.script:
        log.warning("session %s: values of %s could not be stored and are gone", session.id, names)
        return {n: None for n in names}
    scratch = Session(session.host, session.doc, session.id)
    scratch.store = session.dm.new_store({"In": InPredicate(session), "_sessionid": session.id,
                                          "_name": session.doc.name, "_ioprocessors": {}})
    scratch._busy = True
    scratch._run_block(session.doc.script)
    out = {}
    for name in names:
        if name in scratch.store:
            out[name] = scratch.store[name]
        else:
            log.warning("session %s: value of %s could not be stored and is gone", session.id, name)
            out[name] = None
    return out


def link_children(session: Session, sessions: dict[str, Session]) -> None:
    """Re-attach invocations to their restored child sessions (or custom invokers)."""
    from .invokers import Invocation

    records = session._restore["invocations"] if session._restore else []
    for rec in records:
        state = session.doc.by_id[rec["state"]]
        definition = state.invokes[rec["index"]]
        typ = definition.type or "http://www.w3.org/TR/scxml/"
        canonical = session.host.registry.invoker_type(typ) or "http://www.w3.org/TR/scxml/"
        invocation = Invocation(rec["invokeid"], state, definition, session.host.invoker_for(canonical))
        invocation.finished = rec["finished"]
        if rec["child"] is not None:
            invocation.handle = sessions.get(rec["child"])
            if invocation.handle is None:
                invocation.finished = True
        else:
            restorer = getattr(invocation.invoker, "restore", None)
            if restorer is not None:
                restorer(invocation, rec["handle"])
        session.add_invocation(invocation)


def resume(session: Session) -> None:
    """Re-arm delayed sends at their original due times (overdue ones fire at once) and
    process whatever was queued when the snapshot was taken."""
    pending = session._restore["pending"] if session._restore else []
    session._restore = None
    clock = session.host.clock
    for p in pending:
        req = SendRequest(p["name"], p["target"], p["type"], p["sendid"], decode_value(p["data"]),
                          0.0, p["line"], explicit_id=p["explicit"])
        req.due = p["due"]
        handle = clock.call_at(req.due, session._fire_delayed, req.sendid)
        if session._pending is None:
            session._pending = {}
        session._pending[req.sendid] = (req, handle)
    if session.status == RUNNING and (session._internal or session._external or session.cancel_requested):
        session._schedule()
