"""Values crossing between Python and a JavaScript context, in the tagged JSON of ``prelude.py``.

Python to JavaScript: plain values go as themselves where the binding carries them intact
(``str`` without NUL, ``int``, ``float``, ``bool``), everything else as tagged JSON text.
JavaScript to Python: ``out`` answers a primitive, ``S``+string, ``N`` (null), ``J``/``T``+JSON
(plain / tagged) or ``R<n>:``+JSON (an object, remembered by the context as reference ``n``).
Tagged parts come to Python as ``Foreign`` values, kept whole; objects handed out as ``JsDict``
/ ``JsList`` remember their reference, so assigning one back within the same event gives the
flow the same object, not a copy (ECMAScript assignment shares objects).
"""

from __future__ import annotations

import json
from math import isfinite
from typing import Any

import orjson
from lxml import etree

from ..datamodel import Foreign
from ..events import Event

TAG = "$t"
# What ``value`` kind the prelude's functions take: 0 the payload itself, 1 tagged JSON, 2 undefined,
# 3 plain JSON (parsed by the engine's own JSON, without the codec), 4 an object of the context by
# the index ``out`` gave it.
# 5 the object of the event being processed at a path (``local.EventObject``).
RAW, JSON_TEXT, UNDEFINED, PLAIN_JSON, REF, EVENT_PATH = 0, 1, 2, 3, 4, 5
MAX_SAFE_INT = 2**53


class JsDict(dict):
    """An object a flow's expression gave: a dict that remembers which object it was."""

    __slots__ = ("ref",)

    def __str__(self) -> str:  # as a flow's <log> shows it: JSON, as JSON.stringify would
        return json.dumps(self, default=str, ensure_ascii=False)


class JsList(list):
    """An array a flow's expression gave: a list that remembers which array it was."""

    __slots__ = ("ref",)

    def __str__(self) -> str:
        return json.dumps(self, default=str, ensure_ascii=False)


def _revive(d: dict[str, Any]) -> Any:
    tag = d.get(TAG)
    if tag is None:
        return d
    if tag == "o":
        return {k: v for k, v in d["v"]}
    return Foreign({k: _plain(v) for k, v in d.items()})


def _plain(value: Any) -> Any:
    """A revived part back to its JSON form (inside a ``Foreign`` everything stays JSON)."""
    if isinstance(value, Foreign):
        return value.form
    if isinstance(value, dict):
        if TAG in value:
            return {TAG: "o", "v": [[k, _plain(v)] for k, v in value.items()]}
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _tree(value: Any, generation: int | None) -> Any:
    """The JSON-ready tagged form of a Python value (the careful path, for values with tags)."""
    if isinstance(value, Foreign):
        return value.form
    if isinstance(value, etree._Element):
        return _default(value)
    if isinstance(value, (JsDict, JsList)) and value.ref is not None and value.ref[0] == generation:
        return {TAG: "ref", "v": value.ref[1]}
    if isinstance(value, dict):
        if TAG in value:
            return {TAG: "o", "v": [[str(k), _tree(v, generation)] for k, v in value.items()]}
        return {str(k): _tree(v, generation) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_tree(v, generation) for v in value]
    if isinstance(value, float) and not isfinite(value):
        return {TAG: "n", "v": "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return _tree(_default(value, generation), generation)


def _default(value: Any, generation: int | None = None) -> Any:
    if isinstance(value, Foreign):
        return value.form
    if isinstance(value, (JsDict, JsList)):
        if value.ref is not None and value.ref[0] == generation:
            return {TAG: "ref", "v": value.ref[1]}
        return dict(value) if isinstance(value, dict) else list(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, etree._Element):
        return {TAG: "dom", "v": xml_tree(value), "doc": True}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Event):
        return {"name": value.name, "data": value.data, "type": value.type}
    return str(value)


_DUMP_OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_NON_STR_KEYS


def to_json(value: Any, generation: int | None = None) -> str:
    """Tagged JSON text for ``value``; objects a context of ``generation`` handed out go back
    as references to themselves."""
    text = plain_json(value, generation)
    return text if text is not None else tagged_json(value, generation)


def tagged_json(value: Any, generation: int | None = None) -> str:
    """``to_json``'s careful path, for dicts with a "$t" key of their own, or what orjson refused.
    (A Python NaN or infinity, which orjson writes as null, arrives as null: JavaScript's own
    never leave a context as Python floats.)"""
    return json.dumps(_tree(value, generation), ensure_ascii=False, allow_nan=False)


def plain_json(value: Any, generation: int | None = None) -> str | None:
    """``to_json(value)`` when orjson writes it without a tag, else None. Such text any JSON
    reader reads back as ``loads`` does: UTF-8 (no lone surrogate), integers within 64 bits,
    nested at most 254 deep (orjson refuses more), no NaN or infinity."""
    try:
        text = orjson.dumps(value, default=lambda v: _default(v, generation), option=_DUMP_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return None
    return None if b'"$t"' in text else text.decode()


def to_js(value: Any, generation: int | None = None) -> tuple[int, Any]:
    """``(kind, payload)`` for the prelude's ``value(kind, payload)``."""
    t = type(value)
    if t is str:
        if "\0" not in value:
            return RAW, value
    elif t is bool or (t is int and -MAX_SAFE_INT < value < MAX_SAFE_INT) or (
            t is float and isfinite(value) and value != 0.0):  # -0.0 and NaN need their tags
        return RAW, value
    elif t is Foreign and value.form == {TAG: "u"}:
        return UNDEFINED, None
    elif (t is JsDict or t is JsList) and value.ref is not None and value.ref[0] == generation:
        return REF, value.ref[1]  # the very object, without a copy (nor the codec)
    text = to_json(value, generation)
    return (JSON_TEXT if '"$t"' in text else PLAIN_JSON), text


def loads(text: str) -> Any:
    """Tagged JSON text from the context (no kind prefix) as Python values."""
    if '"$t"' in text:
        return json.loads(text, object_hook=_revive)
    return orjson.loads(text)


def from_js(result: Any, generation: int) -> Any:
    """A Python value from what ``out`` answered; ``generation`` tags the references."""
    if type(result) is not str:
        if type(result) is float and result.is_integer() and -MAX_SAFE_INT < result < MAX_SAFE_INT:
            return int(result)  # one number type in JavaScript: 2, as JSON.stringify writes it
        return result
    head = result[:1]
    if head == "S":
        return result[1:]
    if head == "N":
        return None
    if head == "J":
        return orjson.loads(result[1:])
    if head == "T":
        return json.loads(result[1:], object_hook=_revive)
    if head == "R":
        colon = result.index(":")
        index = int(result[1:colon])
        value = loads(result[colon + 2:]) if result[colon + 1] == "T" else orjson.loads(result[colon + 2:])
        if isinstance(value, dict):
            value = JsDict(value)
        elif isinstance(value, list):
            value = JsList(value)
        else:
            return value
        value.ref = (generation, index)
        return value
    raise ValueError(f"unexpected answer from the script engine: {result[:40]!r}")


def xml_tree(el: etree._Element) -> list:
    """An element as ``[name, namespace, attributes, children]`` (children: text or trees)."""
    qname = etree.QName(el)
    name = f"{el.prefix}:{qname.localname}" if el.prefix else qname.localname
    children: list[Any] = []
    if el.text:
        children.append(el.text)
    for child in el:
        if isinstance(child.tag, str):
            children.append(xml_tree(child))
        if child.tail:
            children.append(child.tail)
    attrs = {etree.QName(k).localname if k.startswith("{") else k: v for k, v in el.attrib.items()}
    return [name, qname.namespace, attrs, children]


def element_from_tree(tree: list) -> etree._Element:
    """The inverse of ``xml_tree`` (namespaces kept; prefixes as the tree named them)."""
    name, ns, attrs, children = tree
    prefix, _, local = name.rpartition(":")
    tag = f"{{{ns}}}{local}" if ns else local
    el = etree.Element(tag, nsmap={prefix or None: ns} if ns else None)
    for k, v in attrs.items():
        el.set(k, v)
    last = None
    for child in children:
        if isinstance(child, str):
            if last is None:
                el.text = (el.text or "") + child
            else:
                last.tail = (last.tail or "") + child
        else:
            last = element_from_tree(child)
            el.append(last)
    return el


def to_python(value: Any) -> Any:
    """A value for the rest of the engine: DOM trees become lxml elements (sent or invoked)."""
    if isinstance(value, Foreign):
        form = value.form
        if isinstance(form, dict) and form.get(TAG) == "dom" and isinstance(form.get("v"), list):
            try:
                return element_from_tree(form["v"])
            except (ValueError, TypeError):
                return value
    return value
