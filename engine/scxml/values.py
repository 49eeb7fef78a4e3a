"""Turning document text into values: inline content, ``src`` files and delay strings."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

from lxml import etree

from .errors import ExecutionError

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
_DELAY = re.compile(r"^\s*(\d*\.?\d+)\s*(ms|s|m|min|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def normalize_space(text: str) -> str:
    return " ".join(text.split())


def text_value(text: str) -> Any:
    """Inline text content: JSON when it parses as JSON, else a space-normalised string."""
    stripped = text.strip()
    if stripped:
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return normalize_space(text)


def value_factory(text: str | None, element: etree._Element | None) -> Callable[[], Any]:
    """A factory giving each session its own fresh copy of an inline value."""
    if element is not None:
        frozen = copy.deepcopy(element)
        return lambda: copy.deepcopy(frozen)
    value = text_value(text or "")
    if isinstance(value, (dict, list)):
        blob = json.dumps(value)
        return lambda: json.loads(blob)
    return lambda: value


def resolve_src(src: str, base_dir: str | None) -> str:
    """A local path for a ``src`` URI: only ``file:`` and plain paths, and only inside the
    document's own folder (the flows folder in the engine), symbolic links followed first. A
    flow is trusted code, but its ``src`` must not turn into a way to read the engine's keys or
    any other file of the host."""
    parsed = urlparse(src)
    if parsed.scheme not in ("", "file") or (parsed.scheme == "" and re.match(r"^[a-zA-Z]:", src)):
        raise ExecutionError(f"cannot fetch {src!r}: only local files are allowed")
    if base_dir is None:
        raise ExecutionError(f"cannot read {src!r}: the document has no folder to read from")
    path = unquote(parsed.path if parsed.scheme == "file" else src)
    if parsed.scheme == "file" and parsed.netloc:
        path = parsed.netloc + path
    if not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    path = os.path.normpath(path)
    root = os.path.realpath(base_dir)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise ExecutionError(f"cannot read {src!r}: it is outside the document's folder {base_dir}")
    return path


def load_src(src: str, base_dir: str | None) -> Callable[[], Any]:
    """Read a ``src`` file once; XML becomes an element, other text as inline content does."""
    path = resolve_src(src, base_dir)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ExecutionError(f"cannot read {src!r}: {e.strerror}") from e
    text = raw.decode("utf-8", errors="replace")
    if text.lstrip().startswith("<"):
        try:
            element = etree.fromstring(raw, _SAFE_PARSER)
        except etree.XMLSyntaxError:
            element = None
        if element is not None:
            return value_factory(None, element)
    return value_factory(text, None)


def parse_delay(value: Any) -> float:
    """Seconds from a CSS2-style time (``500ms``, ``2s``, ``.5s``); numbers are seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ExecutionError(f"negative delay {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ExecutionError(f"delay must be a time such as '2s' or '500ms', not {value!r}")
    m = _DELAY.match(value)
    if not m:
        raise ExecutionError(f"delay must be a time such as '2s' or '500ms', not {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]
