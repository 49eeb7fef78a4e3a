"""Small helpers to write SCXML documents inline in tests."""

from __future__ import annotations

from engine.scxml import Document, compile_document

NS = 'xmlns="http://www.w3.org/2005/07/scxml"'


def scxml(body: str, *, initial: str | None = None, extra: str = "", **kw) -> Document:
    init = f' initial="{initial}"' if initial else ""
    text = f'<scxml {NS}{init} datamodel="python" {extra}>{body}</scxml>'
    return compile_document(text, **kw)
