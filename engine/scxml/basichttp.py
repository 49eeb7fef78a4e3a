"""The Basic HTTP Event I/O Processor (W3C D.2) on aiohttp.

Receiving: ``POST {base}/basichttp/{sessionid}``; the event is named by the ``_scxmleventname``
parameter, else ``HTTP.POST``; other form parameters become ``_event.data`` (a JSON body is
parsed, any other body is the data as text); ``_event.raw`` is the request as received.

Sending: form-encoded POST of ``_scxmleventname`` plus the namelist and ``<param>`` values.
A ``<content>`` body is sent form-encoded as a bare value (``this+is+some+content``), JSON
for dicts and lists, XML for elements; the event name then travels in the query string.
Sends never block the session: each runs as a task; transient failures (refused or reset
connections, time-outs, 408, 429, 5xx) are retried with exponential backoff within a bounded
budget, and a send that still fails comes back as ``error.communication``.

Security: a session id alone grants nothing. The access URI in ``_ioprocessors`` is
``{base}/basichttp/{sessionid}/{capability}``, the capability an HMAC of the session id under a
per-engine key (so it survives restarts without being stored); a request without the right one
gets the same 404 as an unknown session. Sends go through the outbound URL policy
(``engine.urlpolicy``), except to this processor's own access URIs; no ``X-SCXML-Origin`` header
is sent, because the only origin a receiver could reply to is the access URI, and that carries
the capability (a flow that wants replies passes its location explicitly).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote_plus, unquote_plus, urlencode, urlsplit

from aiohttp import ClientConnectorDNSError, ClientError, ClientSession, ClientTimeout, web
from lxml import etree
from yarl import URL

from .. import bounded_json
from ..urlpolicy import GuardedClient, UrlPolicy, UrlRefused, describe_error, printable, refusal
from .errors import CommunicationError
from .events import AttrDict, Event
from .executable import SendRequest

if TYPE_CHECKING:
    from .ports import AddressedSession, ProcessorHost

BASIC_HTTP = "http://www.w3.org/TR/scxml/#BasicHTTPEventProcessor"
EFFECT_KIND = "basichttp"
EVENT_PARAM = "_scxmleventname"
log = logging.getLogger("engine.scxml.basichttp")
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
OWN_PATH = re.compile(r"^/basichttp/[^/]+/[^/]+$")


@dataclass(frozen=True)
class RetryBudget:
    """How hard a send tries: at most ``attempts`` tries, never waiting past ``seconds`` in all."""

    attempts: int = 4
    seconds: float = 5.0
    first_delay: float = 0.25


def capability(key: bytes, session_id: str) -> str:
    """The unguessable part of a session's access URI (192 bits, URL-safe)."""
    digest = hmac.new(key, b"basichttp\0" + session_id.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode("ascii")


class _SendFailed(Exception):
    def __init__(self, reason: str, retry: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.retry = retry
        self.retry_after = retry_after


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
    """One per host; listens on loopback by default.

    ``key`` makes the capabilities (an engine passes one derived from its data key, so access
    URIs survive restarts; without one, a random key lives as long as the processor);
    ``policy`` decides where sends may go (default: public addresses only); ``retry`` bounds
    the retries of one send."""

    type = BASIC_HTTP
    effect_kind = EFFECT_KIND

    def __init__(self, host: ProcessorHost, timeout: float = 10.0, *, key: bytes | None = None,
                 policy: UrlPolicy | None = None, retry: RetryBudget | None = None,
                 base_url: str | None = None):
        self.host = host
        self.base_url = base_url
        self.timeout = timeout
        self.policy = policy or UrlPolicy()
        self.retry = retry or RetryBudget()
        self._key = key or os.urandom(32)
        self._runner: web.AppRunner | None = None
        self._client: GuardedClient | None = None
        self._own_client: ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- addresses -----------------------------------------------------------------------
    def location(self, session: AddressedSession) -> str | None:
        if self.base_url is None:
            return None
        return f"{self.base_url}/basichttp/{session.id}/{capability(self._key, session.id)}"

    def _grants(self, session_id: str, presented: str) -> bool:
        return hmac.compare_digest(capability(self._key, session_id).encode(), presented.encode("utf-8"))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on its own (``run`` and tests); the engine serves ``handle`` on its own port."""
        if self.base_url is not None:
            return
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/basichttp/{sid}", self.handle)
        app.router.add_post("/basichttp/{sid}/{cap}", self.handle)
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
        if self._own_client is not None:
            await self._own_client.close()
            self._own_client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.base_url = None

    # -- receiving -----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        """``POST /basichttp/{sid}/{capability}``; anything short of both answers 404 and changes
        nothing, whether or not the session exists."""
        sid = request.match_info["sid"]
        session = self.host.sessions.get(sid)
        if session is None or not session.is_running or not self._grants(sid, request.match_info.get("cap", "")):
            return web.json_response({"exception": "NotFound", "message": "no such session"}, status=404)
        body = await request.read()
        text = body.decode("utf-8", errors="replace")
        params = list(parse_qsl(request.query_string, keep_blank_values=True))
        data: Any = None
        ctype = request.content_type
        if ctype == "application/json" and text.strip():
            try:
                data = bounded_json.loads(text)
            except bounded_json.TooDeep as e:
                return web.json_response({"exception": "BadRequest", "message": f"the body is nested too deeply: {e}"},
                                         status=400)
            except ValueError:
                return web.json_response({"exception": "BadRequest", "message": "body is not valid JSON"},
                                         status=400)
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
        reason = self.host.refuses_external(name)
        if reason is not None:  # from outside, a session may not be told what only the engine says
            return web.json_response({"exception": "Forbidden", "message": f"event {name!r} refused: {reason}"},
                                     status=403)
        if data is None and fields:
            data = fields
        head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
        version = f"HTTP/{request.version.major}.{request.version.minor}"
        path = f"/basichttp/{sid}" + (f"?{request.query_string}" if request.query_string else "")
        raw = f"{request.method} {path} {version}\r\n{head}\r\n{text}"  # the capability left out
        session.deliver(Event(name, data, type="external", origintype=BASIC_HTTP, raw=raw,
                              origin=request.headers.get("X-SCXML-Origin")))
        return web.Response(status=200, text="ok")

    # -- sending -------------------------------------------------------------------------
    def check(self, session: AddressedSession, req: SendRequest) -> None:
        if not req.target:
            raise CommunicationError(f"line {req.line}: a Basic HTTP send needs a target URL")
        if urlsplit(req.target).scheme not in ("http", "https"):
            raise CommunicationError(f"line {req.line}: target {printable(req.target)!r} is not an http(s) URL")
        if not self._is_own(req.target):
            try:
                self.policy.check(req.target)
            except UrlRefused as e:
                log.warning("basic http send of session %s refused by the outbound URL policy: %s", session.id, e)
                raise CommunicationError(f"line {req.line}: target refused by the outbound URL policy: {e}") from None

    def send(self, session: AddressedSession, req: SendRequest) -> None:
        url, body, headers = self._encode(session, req)
        payload = {"url": url, "body": body.decode("utf-8"), "headers": headers, "sendid": req.sendid}
        self.host.emit(session, EFFECT_KIND, payload)

    def perform(self, session_id: str, payload: dict[str, Any]) -> asyncio.Task:
        """Carry out one send (the host calls this, after persisting it when it persists)."""
        task = asyncio.get_running_loop().create_task(self._post(session_id, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _is_own(self, target: str) -> bool:
        """A send to one of this processor's own access URIs (a session writing to itself or to
        another session of this host) needs no policy: it never leaves the engine."""
        if self.base_url is None:
            return False
        try:
            url, own = URL(target), URL(self.base_url)
        except (ValueError, TypeError):
            return False
        return (url.scheme, url.raw_host, url.port) == (own.scheme, own.raw_host, own.port) \
            and url.raw_user is None and bool(OWN_PATH.match(url.raw_path))

    def _encode(self, session: AddressedSession, req: SendRequest) -> tuple[str, bytes, dict[str, str]]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
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
        """One send, retried while its failures are transient and the budget lasts."""
        url, sendid = payload["url"], payload["sendid"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry.seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._attempt(url, payload)
                return
            except _SendFailed as f:
                failure = f
            delay = self.retry.first_delay * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
            delay = max(delay, failure.retry_after or 0.0)
            if failure.retry and attempt < self.retry.attempts and loop.time() + delay <= deadline:
                log.info("basic http send %s to %s: attempt %d failed (%s); retrying in %.2f s",
                         sendid, printable(url), attempt, failure, delay)
                await asyncio.sleep(delay)
                continue
            log.warning("basic http send %s to %s failed after %d attempt(s): %s",
                        sendid, printable(url), attempt, failure)
            session = self.host.sessions.get(session_id)
            if session is not None:
                session.post_error("error.communication", f"send to {url} failed: {failure}", sendid)
            return

    async def _attempt(self, url: str, payload: dict[str, Any]) -> None:
        """One POST; ``_SendFailed`` says why it failed and whether trying again may help."""
        data, headers = payload["body"].encode(), dict(payload["headers"])
        headers.pop("X-SCXML-Origin", None)  # effects stored by older versions carried it
        try:
            if self._is_own(url):
                if self._own_client is None:
                    self._own_client = ClientSession(timeout=ClientTimeout(total=self.timeout))
                request = self._own_client.post(url, data=data, headers=headers, allow_redirects=False)
            else:
                if self._client is None:
                    self._client = self.policy.client(self.timeout)
                request = self._client.post(url, data=data, headers=headers)
            async with request as resp:
                await resp.read()
                status = resp.status
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except UrlRefused as e:
            raise _SendFailed(f"refused by the outbound URL policy: {e}", retry=False) from None
        except ClientConnectorDNSError as e:
            reason = refusal(e)
            if reason is not None:
                raise _SendFailed(f"refused by the outbound URL policy: {reason}", retry=False) from None
            raise _SendFailed(describe_error(e), retry=True) from None
        except (TimeoutError, ClientError, OSError) as e:
            raise _SendFailed(describe_error(e), retry=True) from None
        if 300 <= status < 400:
            raise _SendFailed(f"answered HTTP {status} (redirects are not followed)", retry=False)
        if status >= 400:
            raise _SendFailed(f"answered HTTP {status}", retry=status in RETRY_STATUS, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (numeric form only; a date is ignored), at most a minute."""
    try:
        return min(max(float(value), 0.0), 60.0) if value else None
    except ValueError:
        return None
