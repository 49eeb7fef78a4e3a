"""The one outbound URL policy: which URLs the engine may send to, and which addresses it may reach.

Every outbound HTTP request (status notifications, notification-API subscriptions, Basic HTTP
sends from flows, FCM) goes through ``GuardedClient``, which enforces three things:

- the URL: http or https, a host, no userinfo, no control characters; when the allow list of
  origins is not empty, the parsed (scheme, host, port) must equal one of its entries (a prefix
  match would let ``http://allowed@other/`` or ``http://allowed.evil/`` through);
- the address actually connected to: the aiohttp resolver is wrapped so that every address a name
  resolves to is checked before a socket is opened (a DNS answer that changes between a check and
  the connect cannot slip through). Loopback, private, link-local, unique-local, multicast,
  unspecified, reserved and cloud-metadata addresses are refused unless a listed network contains
  them, or the URL's host is that very IP literal and its origin is listed;
- redirects are never followed: a 3xx is an answer like any other, and callers treat it as failure.

Nothing here imports the engine, so the SCXML interpreter can receive a policy as a plain
constructor argument.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048
# Explicitly named although is_global already excludes them: the addresses an SSRF aims for first.
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))


class Resettable(Protocol):
    def reset(self) -> None:
        """Forget connections and addresses obtained under rules that have just changed."""


class UrlRefused(ValueError):
    """A URL or address the policy does not allow; the message says why (safe to show a client)."""


class AddressRefused(OSError):
    """Raised from the resolver: the name resolved only to addresses the policy refuses."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _printable(text: str, limit: int = 120) -> str:
    """A client's text quoted for an error message or a log line (control characters escaped)."""
    shown = text if len(text) <= limit else text[:limit] + "…"
    return repr(shown)


def printable(text: Any) -> str:
    """``text`` with control characters escaped, so a client's value cannot forge a log line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def parse_url(text: Any) -> tuple[URL, Origin]:
    """The URL as aiohttp will use it and its origin; ``UrlRefused`` when it is not an absolute
    http(s) URL without userinfo."""
    if not isinstance(text, str) or not text:
        raise UrlRefused("must be an http(s) URL")
    if len(text) > MAX_URL_LENGTH:
        raise UrlRefused(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise UrlRefused(f"{_printable(text)} contains spaces or control characters")
    try:
        url = URL(text)
        scheme, host, port = url.scheme.lower(), url.raw_host, url.port
    except (ValueError, TypeError) as e:
        raise UrlRefused(f"{_printable(text)} is not a valid URL: {e}") from None
    if scheme not in DEFAULT_PORTS:
        raise UrlRefused(f"{_printable(text)} is not an http(s) URL")
    if url.raw_user is not None or url.raw_password is not None:
        raise UrlRefused(f"{_printable(text)} carries userinfo (user@host), which is refused")
    if not host:
        raise UrlRefused(f"{_printable(text)} has no host")
    host = host.lower().rstrip(".")
    return url, Origin(scheme, host, port or DEFAULT_PORTS[scheme])


def parse_origin(text: str) -> Origin:
    """An allow-list entry: ``scheme://host[:port]`` with no path, query or userinfo."""
    url, origin = parse_url(text)
    if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
        raise UrlRefused(f"{_printable(text)} is not an origin (scheme://host[:port], without a path)")
    return origin


# Host names the C library reads as IPv4 although ipaddress does not: 2130706433, 127.1, 0x7f.1, 0.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)
# IPv6 ranges that carry an IPv4 address inside (IPv4-compatible, IPv4-translated, NAT64, 6to4,
# Teredo): through a translator they reach that IPv4 address, private or not, so they are never
# taken for public.
EMBEDDING_IPV4 = tuple(ipaddress.ip_network(n) for n in (
    "::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32"))


def _ip(host: str) -> IPAddress | None:
    host = host.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.match(host):
            return None
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast, not a cloud metadata address, and not an IPv6 address that
    embeds an IPv4 one."""
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in EMBEDDING_IPV4):
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_unspecified and ip not in METADATA


_ALLOWED_KEPT = 4096


class UrlPolicy:
    """``origins``: the allow list (empty = any origin, public addresses only); ``networks``:
    ranges that may be reached although they are private (e.g. ``10.0.0.0/8``, ``127.0.0.1/32``)."""

    def __init__(self, origins: Iterable[str] = (), networks: Iterable[str] = ()):
        self.origins = frozenset(parse_origin(o) for o in origins)
        self.exempt: frozenset[Origin] = frozenset()
        nets: list[Network] = []
        for text in networks:
            try:
                nets.append(ipaddress.ip_network(str(text), strict=False))
            except ValueError as e:
                raise UrlRefused(f"allowed network {_printable(str(text))} is not an IP network: {e}") from None
        self.networks = tuple(nets)
        # URLs already allowed (emptied when ``adopt`` changes the rules): a webhook target is
        # checked on every delivery, and parsing it again cost ~13 us a POST. Bounded; refusals
        # are not kept.
        self._allowed: dict[str, URL] = {}
        # What ``adopt`` must reach besides this object: policies made by ``exempting``, clients.
        self._derived: weakref.WeakSet[UrlPolicy] = weakref.WeakSet()
        self._clients: weakref.WeakSet[Resettable] = weakref.WeakSet()

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], where: str) -> UrlPolicy:
        """From ``allowed_targets`` (origins) and ``allowed_networks`` (CIDR ranges) of a config."""
        origins, networks = raw.get("allowed_targets", []), raw.get("allowed_networks", [])
        for key, value in (("allowed_targets", origins), ("allowed_networks", networks)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{where}: {key} must be a list of strings")
        try:
            return cls(origins, networks)
        except UrlRefused as e:
            raise ValueError(f"{where}: {e}") from None

    def exempting(self, *urls: str) -> UrlPolicy:
        """The same policy, except that these URLs' origins pass the allow list of origins: for
        endpoints an administrator names in settings (FCM). Their addresses are still checked."""
        other = UrlPolicy()
        other.origins, other.networks = self.origins, self.networks
        other.exempt = self.exempt | {parse_url(u)[1] for u in urls}
        self._derived.add(other)
        return other

    def add_client(self, client: Resettable) -> None:
        """``client.reset()`` is called whenever ``adopt`` changes the rules (a client that keeps
        connections open registers; it is held weakly)."""
        self._clients.add(client)

    def adopt(self, other: UrlPolicy) -> None:
        """Take ``other``'s allow lists in place, here and in every policy made from this one by
        ``exempting``: a cluster's shared ``notifications.json`` changed, and the parts holding
        this object (notifications, Basic HTTP, FCM) must obey the new rules from their next
        request. Their clients drop the connections and DNS answers made under the old rules."""
        self.origins, self.networks = other.origins, other.networks
        self._allowed = {}
        for client in list(self._clients):
            client.reset()
        for derived in list(self._derived):
            derived.adopt(self)

    def describe(self) -> dict[str, Any]:
        return {"allowed_targets": sorted(str(o) for o in self.origins) or "any origin, public addresses only",
                "allowed_networks": [str(n) for n in self.networks]}

    # -- checks ----------------------------------------------------------------------------
    def check(self, text: Any) -> URL:
        """The URL to request, when the policy allows it; ``UrlRefused`` with the reason otherwise.
        An IP-literal host is checked here (no resolver runs for it); a name is checked when
        it is resolved, on the addresses the socket will use."""
        if type(text) is str:
            found = self._allowed.get(text)
            if found is not None:
                return found
        url = self._check(text)
        if type(text) is str:
            if len(self._allowed) >= _ALLOWED_KEPT:
                self._allowed.clear()
            self._allowed[text] = url
        return url

    def _check(self, text: Any) -> URL:
        url, origin = parse_url(text)
        if self.origins and origin not in self.origins and origin not in self.exempt:
            raise UrlRefused(f"{origin} is not in the allow list of outbound targets")
        ip = _ip(origin.host)
        if ip is not None and not self.address_allowed(ip) and origin not in self.origins:
            raise UrlRefused(f"{origin}: address {ip} is loopback, private, link-local or otherwise "
                             "not public, and no allowed network contains it")
        return url

    def address_allowed(self, ip: IPAddress | str) -> bool:
        if isinstance(ip, str):
            parsed = _ip(ip)
            if parsed is None:
                return False
            ip = parsed
        return any(ip in net for net in self.networks) or is_public(ip)

    # -- the connect-time side ------------------------------------------------------------------
    def resolver(self) -> AbstractResolver:
        return GuardedResolver(self)

    def client(self, timeout: float) -> GuardedClient:
        return GuardedClient(self, timeout)


class GuardedResolver(AbstractResolver):
    """The default resolver, keeping only the addresses the policy allows."""

    def __init__(self, policy: UrlPolicy):
        self.policy = policy
        self.inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results if self.policy.address_allowed(r["host"])]
        if not allowed:
            shown = ", ".join(sorted({r["host"] for r in results})) or "nothing"
            raise AddressRefused(f"{host} resolves to {shown}, which the outbound URL policy refuses "
                                 "(not public, and no allowed network contains it)")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


class GuardedClient:
    """POSTs through the policy: URL checked, addresses filtered, redirects not followed."""

    def __init__(self, policy: UrlPolicy, timeout: float):
        self.policy = policy
        self.timeout = timeout
        self._session: ClientSession | None = None
        self._leaving: dict[ClientSession, asyncio.Task] = {}  # sessions left by ``reset``, closing soon
        policy.add_client(self)

    def post(self, target: str, **kwargs: Any) -> Any:
        """``async with client.post(url, data=..., headers=...) as response``; raises ``UrlRefused``."""
        url = self.policy.check(target)
        if self._session is None:  # created lazily: a ClientSession belongs to a running loop
            connector = TCPConnector(resolver=self.policy.resolver())
            self._session = ClientSession(connector=connector, timeout=ClientTimeout(total=self.timeout))
        return self._session.post(url, allow_redirects=False, **kwargs)

    async def close(self) -> None:
        for session, task in list(self._leaving.items()):
            task.cancel()
            await session.close()
        self._leaving.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reset(self) -> None:
        """The policy changed: the next request opens a new session (new connections, addresses
        resolved and checked again). The old one is closed once its requests in flight are over
        (they end within ``timeout``)."""
        old, self._session = self._session, None
        if old is None:
            return
        try:
            self._leaving[old] = asyncio.get_running_loop().create_task(self._close_later(old))
        except RuntimeError:  # no loop runs: nothing can be in flight either
            return

    async def _close_later(self, session: ClientSession) -> None:
        await asyncio.sleep(self.timeout)
        self._leaving.pop(session, None)
        await session.close()


def refusal(error: BaseException) -> str | None:
    """The policy's reason when ``error`` (or what caused it) is a refusal, else None; aiohttp
    wraps the resolver's ``AddressRefused`` in its own connector errors."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (UrlRefused, AddressRefused)):
            return str(current)
        nested = getattr(current, "os_error", None)
        current = nested if isinstance(nested, BaseException) and id(nested) not in seen else current.__cause__
    return None


def describe_error(error: BaseException) -> str:
    """A failure's cause for a log line: the class, and the message when there is one."""
    text = printable(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
