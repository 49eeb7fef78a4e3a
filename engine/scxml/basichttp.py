"""The Basic HTTP Event I/O Processor (W3C D.2) on aiohttp.

Receiving: ``POST {base}/basichttp/{sessionid}``; the event is named by the ``_scxmleventname``
parameter, else ``HTTP.POST``; other form parameters become ``_event.data`` (a JSON body is
parsed, any other body is the data as text); ``_event.raw`` is the request as received.

Sending: form-encoded POST of ``_scxmleventname`` plus the namelist and ``<param>`` values.
A ``<content>`` body is sent form-encoded as a bare value (``this+is+some+content``), JSON
for dicts and lists, XML for elements; the event name then travels in the query string.
Sends never block the session: each runs as a task and failures come back as
``error.communication``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote_plus, unquote_plus, urlencode, urlsplit

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from lxml import etree

from .errors import CommunicationError
from .events import AttrDict, Event
from .executable import SendRequest

if TYPE_CHECKING:
    from .host import SessionHost
    from .session import Session

BASIC_HTTP = "http://www.w3.org/TR/scxml/#BasicHTTPEventProcessor"
EFFECT_KIND = "basichttp"
EVENT_PARAM = "_scxmleventname"
log = logging.getLogger("engine.scxml.basichttp")


def _literal(text: str) -> Any:
    """Form values travel as text; numbers, booleans and null written as JSON come back typed."""
    if text and (text[0] in "-0123456789" or text in ("true", "false", "null")):
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if not isinstance(value, (dict, list)):
            return value
    return text


class BasicHttpProcessor:
    """One per host; listens on loopback by default."""

    type = BASIC_HTTP
    effect_kind = EFFECT_KIND

    def __init__(self, host: SessionHost, timeout: float = 10.0):
        self.host = host
        self.base_url: str | None = None
        self.timeout = timeout
        self._runner: web.AppRunner | None = None
        self._client: ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- addresses -----------------------------------------------------------------------
    def location(self, session: Session) -> str | None:
        if self.base_url is None:
            return None
        return f"{self.base_url}/basichttp/{session.id}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on its own (``run`` and tests); the engine serves ``handle`` on its own port."""
        if self.base_url is not None:
            return
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/basichttp/{sid}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        bound_port = sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{bound_port}"

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.base_url = None

    # -- receiving -----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        session = self.host.sessions.get(request.match_info["sid"])
        if session is None or not session.is_running:
            return web.json_response({"error": "no such session"}, status=404)
        body = await request.read()
        text = body.decode("utf-8", errors="replace")
        params = list(parse_qsl(request.query_string, keep_blank_values=True))
        data: Any = None
        ctype = request.content_type
        if ctype == "application/json" and text.strip():
            try:
                data = json.loads(text)
            except ValueError:
                return web.json_response({"error": "body is not valid JSON"}, status=400)
        elif ctype in ("application/x-www-form-urlencoded", "") and text:
            if "=" in text:
                params.extend(parse_qsl(text, keep_blank_values=True))
            else:
                data = unquote_plus(text)
        elif text:
            data = text
        name = f"HTTP.{request.method}"
        fields = AttrDict()
        for key, text_value in params:
            value = _literal(text_value)
            if key == EVENT_PARAM:
                name = text_value
            elif key in fields:
                prev = fields[key]
                fields[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                fields[key] = value
        if data is None and fields:
            data = fields
        head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
        version = f"HTTP/{request.version.major}.{request.version.minor}"
        raw = f"{request.method} {request.path_qs} {version}\r\n{head}\r\n{text}"
        session.deliver(Event(name, data, type="external", origintype=BASIC_HTTP, raw=raw,
                              origin=request.headers.get("X-SCXML-Origin")))
        return web.Response(status=200, text="ok")

    # -- sending -------------------------------------------------------------------------
    def check(self, session: Session, req: SendRequest) -> None:
        if not req.target:
            raise CommunicationError(f"line {req.line}: a Basic HTTP send needs a target URL")
        if urlsplit(req.target).scheme not in ("http", "https"):
            raise CommunicationError(f"line {req.line}: target {req.target!r} is not an http(s) URL")

    def send(self, session: Session, req: SendRequest) -> None:
        url, body, headers = self._encode(session, req)
        payload = {"url": url, "body": body.decode("utf-8"), "headers": headers, "sendid": req.sendid}
        self.host.emit(session, EFFECT_KIND, payload)

    def perform(self, session_id: str, payload: dict[str, Any]) -> asyncio.Task:
        """Carry out one send (the host calls this, after persisting it when it persists)."""
        task = asyncio.get_running_loop().create_task(self._post(session_id, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _encode(self, session: Session, req: SendRequest) -> tuple[str, bytes, dict[str, str]]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        origin = self.location(session)
        if origin:
            headers["X-SCXML-Origin"] = origin
        data = req.data
        url = req.target  # type: ignore[assignment]
        if data is None or isinstance(data, dict):
            pairs: list[tuple[str, str]] = []
            if req.name:
                pairs.append((EVENT_PARAM, req.name))
            for key, value in (data or {}).items():
                for item in value if isinstance(value, list) else [value]:
                    pairs.append((str(key), item if isinstance(item, str) else json.dumps(item)))
            return url, urlencode(pairs).encode(), headers
        if req.name:
            sep = "&" if urlsplit(url).query else "?"
            url = f"{url}{sep}{urlencode([(EVENT_PARAM, req.name)])}"
        if isinstance(data, (list, int, float, bool)):
            headers["Content-Type"] = "application/json"
            return url, json.dumps(data).encode(), headers
        if isinstance(data, etree._Element):
            headers["Content-Type"] = "application/xml"
            return url, etree.tostring(data), headers
        return url, quote_plus(str(data)).encode(), headers

    async def _post(self, session_id: str, payload: dict[str, Any]) -> None:
        if self._client is None:
            self._client = ClientSession(timeout=ClientTimeout(total=self.timeout))
        url = payload["url"]
        try:
            async with self._client.post(url, data=payload["body"].encode(), headers=payload["headers"]) as resp:
                await resp.read()
                if resp.status >= 300:
                    raise CommunicationError(f"{url} answered HTTP {resp.status}")
        except (TimeoutError, ClientError, CommunicationError, OSError) as e:
            log.info("basic http send %s to %s failed: %s", payload["sendid"], url, e)
            session = self.host.sessions.get(session_id)
            if session is not None:
                session.post_error("error.communication", f"send to {url} failed: {e}", payload["sendid"])
