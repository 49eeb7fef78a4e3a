"""Session snapshots: a ``SessionState`` as JSON, and back.

A snapshot holds what ``Session.to_state`` gives: the configuration, the author's data, history,
the queues, pending delayed sends with their absolute due times and the invocations. Values are
JSON with a few tagged types (tuples, sets, bytes, XML elements, events, another datamodel's
``Foreign`` values in their own JSON form); a value nothing can
encode (a function defined by a script, say) is marked lost and, on restore
(``Session.from_state``), taken again from the document's top-level scripts when they define it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from math import isfinite
from typing import Any

import orjson
from lxml import etree

from .datamodel import Foreign
from .events import AttrDict, Event
from .executable import SendRequest
from .session_state import InvocationState, SessionState

TAG = "$t"
FORMAT = 1
# Exactly these types are their own JSON form: checked by ``type(value) in``, which is much
# cheaper than ``isinstance`` against each, and most of a session's values are one of them.
# Floats are not among them: NaN and the infinities have no JSON form and are tagged.
_PLAIN = frozenset({str, int, bool, type(None)})
_KEYS = frozenset({str})


def _encode_items(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``values`` (string keys) with each value JSON-ready; raises ``Unencodable``.

    The copy is made in C and only the values that are not their own JSON form are visited in
    Python: a session's data is mostly such values, and a snapshot is encoded after every
    macrostep that changed it, so the per-value loop was most of the cost of a snapshot."""
    encoded = dict(values)
    plain = _PLAIN
    for name in [k for k, v in values.items() if type(v) not in plain]:
        encoded[name] = encode_value(values[name])
    return encoded


class Unencodable(ValueError):
    pass


def encode_value(value: Any) -> Any:
    """A JSON-ready form of a datamodel value; raises ``Unencodable``."""
    if type(value) in _PLAIN or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if isfinite(value) else {TAG: "float", "v": repr(value)}
    if isinstance(value, AttrDict):
        if _KEYS.issuperset(map(type, value)):
            return {TAG: "attrdict", "v": _encode_items(value)}
        return {TAG: "attrdict", "v": {str(k): encode_value(v) for k, v in value.items()}}
    if isinstance(value, dict):
        if _KEYS.issuperset(map(type, value)) and TAG not in value:
            return _encode_items(value)
        if all(isinstance(k, str) for k in value) and TAG not in value:
            plain = _PLAIN
            return {k: v if type(v) in plain else encode_value(v) for k, v in value.items()}
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
    if isinstance(value, Foreign):
        return {TAG: "foreign", "v": value.form}
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
    if tag == "float":
        return float(v)
    if tag == "bytes":
        return base64.b64decode(v)
    if tag == "xml":
        return etree.fromstring(v, etree.XMLParser(resolve_entities=False, no_network=True))
    if tag == "event":
        return decode_event(v)
    if tag == "foreign":
        return Foreign(v)
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


def encode_state(state: SessionState) -> dict[str, Any]:
    """The JSON-ready form of a session's state; raises what JSON-ready encoding cannot avoid
    (``RecursionError`` for data nested too deeply), never ``Unencodable``: a variable that cannot
    be stored is listed as lost, a done data that cannot is dropped.

    The fields that ``decode_state`` reads as optional (``_OPTIONAL``) are left out while they
    hold their default (most sessions: no parent, no error, no done data): some 100 bytes of a
    snapshot that is written after every macrostep, and snapshots written with them (by earlier
    versions) read the same. The others are always written, as every earlier reader expects.

    A state's ``data_text`` (``Session.to_state(for_snapshot=True)``) is read into its data."""
    lost = list(state.lost)
    values = state.data
    if state.data_text is not None:
        values = {**values, **orjson.loads(state.data_text)}
    return _snapshot(state, _encode_data(values, lost), lost)


def snapshot_json(state: SessionState, dumps: Callable[[Any], str]) -> str:
    """``dumps(encode_state(state))``, the snapshot's text, with ``state.data_text`` written into
    its data as it is: plain JSON that reads back as the datamodel reads it
    (``DataModel.stored_variables``). A snapshot is taken after every macrostep, and parsing that
    text to walk its values and write them again was a fifth of the cost of one. Where orjson,
    which takes the text in, refuses the rest (an integer beyond 64 bits, data nested too deeply
    for it), ``dumps`` writes it all as ``encode_state`` gives it."""
    text = state.data_text
    if text is None:
        return dumps(encode_state(state))
    lost = list(state.lost)
    try:
        data = _joined(orjson.dumps(_encode_data(state.data, lost)), text.encode())
        return orjson.dumps(_snapshot(state, data, lost)).decode()
    except TypeError:  # orjson's refusals (JSONEncodeError is one)
        return dumps(encode_state(state))


def _joined(values: bytes, more: bytes) -> orjson.Fragment:
    """One JSON object of the members of two: ``values`` and ``more`` (their names disjoint)."""
    if values == b"{}":
        return orjson.Fragment(more)
    members = more[1:-1]
    if not members.strip():
        return orjson.Fragment(values)
    return orjson.Fragment(b"%s,%s}" % (values[:-1], members))


def _encode_data(values: dict[str, Any], lost: list[str]) -> dict[str, Any]:
    """The JSON-ready form of a state's variables; the names of those that cannot be stored are
    added to ``lost`` (the others are kept)."""
    try:
        return _encode_items(values)
    except Unencodable:  # rare: find which variables cannot be stored, keep the others
        data = {}
        for name, value in values.items():
            try:
                data[name] = encode_value(value)
            except Unencodable:
                lost.append(name)
        return data


def _snapshot(state: SessionState, data: Any, lost: list[str]) -> dict[str, Any]:
    """``encode_state``'s value, with the state's variables encoded as ``data``."""
    snap = {
        "format": FORMAT,
        "status": state.status,
        "configuration": list(state.configuration),
        "data": data,
        "lost": lost,  # read as required by versions before 2026-12-02 (``_recover_lost``): always written
        "history": {k: list(v) for k, v in state.history.items()} if state.history else {},
        "internal": [encode_event(e) for e in state.internal] if state.internal else [],
        "external": [encode_event(e) for e in state.external] if state.external else [],
        "pending": [{
            "name": req.name, "target": req.target, "type": req.type, "sendid": req.sendid,
            "data": encode_value(req.data), "due": req.due, "line": req.line, "explicit": req.explicit_id,
        } for req in state.pending] if state.pending else [],
        "invocations": [{
            "invokeid": inv.invokeid, "state": inv.state, "index": inv.index, "child": inv.child,
            "handle": inv.handle, "finished": inv.finished,
        } for inv in state.invocations] if state.invocations else [],
        "late_done": list(state.late_done),
        "sendseq": state.sendseq,
    }
    if state.parent is not None:
        snap["parent"] = state.parent
    if state.invokeid is not None:
        snap["invokeid"] = state.invokeid
    if state.final_ids:
        snap["final_ids"] = list(state.final_ids)
    if state.done_data is not None:
        done_data = _safe(state.done_data)
        if done_data is not None:
            snap["done_data"] = done_data
    if state.error is not None:
        snap["error"] = state.error
    if state.cancel_requested:
        snap["cancel_requested"] = True
    return snap


#: The fields ``encode_state`` leaves out while they hold their default; ``decode_state`` reads
#: each with that default (``.get``), as every version since the first one has read them.
_OPTIONAL = ("parent", "invokeid", "final_ids", "done_data", "error", "cancel_requested")


def decode_state(snap: dict[str, Any]) -> SessionState:
    """A session's state from its JSON-ready form; ``ValueError`` for a format we do not read."""
    if snap.get("format") != FORMAT:
        raise ValueError(f"unsupported snapshot format {snap.get('format')!r}")
    pending = []
    for p in snap["pending"]:
        req = SendRequest(p["name"], p["target"], p["type"], p["sendid"], decode_value(p["data"]),
                          0.0, p["line"], explicit_id=p["explicit"])
        req.due = p["due"]
        pending.append(req)
    return SessionState(
        status=snap["status"],
        configuration=list(snap["configuration"]),
        data={k: decode_value(v) for k, v in snap["data"].items()},
        lost=list(snap.get("lost") or ()),
        history={k: list(v) for k, v in snap["history"].items()},
        internal=[decode_event(e) for e in snap["internal"]],
        external=[decode_event(e) for e in snap["external"]],
        pending=pending,
        invocations=[InvocationState(r["invokeid"], r["state"], r["index"], r["child"], r["handle"], r["finished"])
                     for r in snap["invocations"]],
        late_done=list(snap["late_done"]),
        sendseq=snap["sendseq"],
        parent=snap.get("parent"),
        invokeid=snap.get("invokeid"),
        final_ids=list(snap.get("final_ids") or ()),
        done_data=decode_value(snap.get("done_data")),
        error=snap.get("error"),
        cancel_requested=snap.get("cancel_requested", False),
    )


def _safe(value: Any) -> Any:
    try:
        return encode_value(value)
    except Unencodable:
        return None
