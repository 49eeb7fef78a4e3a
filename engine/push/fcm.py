"""Firebase Cloud Messaging HTTP v1: a bearer token from google-auth, one POST per message.

``POST {base}/v1/projects/{project}/messages:send``. The token comes from the service account
through google-auth (scope ``firebase.messaging``), is cached and refreshed only when it is about
to expire. The base URL and the token URI are settings, so tests run against local fakes.

Errors (SPEC 7): UNREGISTERED (404) and INVALID_ARGUMENT (400) are final and the device token is
dropped; 429 and 5xx are retried with backoff honouring ``Retry-After``; 401/403 mark the
credentials as failing.

Both URLs go through the engine's outbound URL policy: checked when the client is built (the
engine refuses to start on a URL the policy refuses), sends through the guarded client (address
checked as it is resolved, no redirects), and the token request, made by google-auth on
``requests``, through an adapter that checks the address each new connection reached before a
byte is sent on it (and follows no redirects).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from typing import Any

import requests
from aiohttp import ClientError
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request
from google.oauth2 import service_account
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..outbound import DeliveryFailure, retry_after_seconds
from ..urlpolicy import GuardedClient, UrlPolicy, UrlRefused, describe_error, refusal
from .credentials import Credentials

log = logging.getLogger("engine.push")
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_BASE = "https://fcm.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
DROP_TOKEN = {"UNREGISTERED", "INVALID_ARGUMENT"}


class PushFailure(DeliveryFailure):
    """A failed send; ``drop_token`` when the device token is no good, ``credentials`` when the
    service account was refused."""

    def __init__(self, reason: str, retry: bool, retry_after: float | None = None,
                 drop_token: bool = False, credentials: bool = False):
        super().__init__(reason, retry, retry_after)
        self.drop_token = drop_token
        self.credentials = credentials


class FcmClient:
    def __init__(self, base_url: str = DEFAULT_BASE, token_uri: str = DEFAULT_TOKEN_URI, timeout: float = 10.0,
                 *, policy: UrlPolicy | None = None):
        """``ValueError`` when the outbound URL policy refuses either URL. Both are settings an
        administrator names, so the allow list of origins does not apply to them; the rest of
        the policy does (http(s), no userinfo, no redirects, public addresses unless allowed)."""
        given = policy or UrlPolicy()
        for name, url in (("fcm_base_url", base_url), ("fcm_token_uri", token_uri)):
            try:
                given.exempting(url).check(url)
            except UrlRefused as e:
                raise ValueError(f"setting {name}: {e}") from None
        self.policy = given.exempting(base_url, token_uri)
        self.base_url = base_url.rstrip("/")
        self.token_uri = token_uri
        self.timeout = timeout
        self.credentials: Credentials | None = None
        self._google: service_account.Credentials | None = None
        self._session: GuardedClient | None = None
        self._token_session = guarded_requests_session(self.policy)
        self._refresh_lock = asyncio.Lock()
        self.token_refreshes = 0

    def use(self, creds: Credentials | None) -> None:
        """Switch credentials; the next send mints a token for them."""
        self.credentials = creds
        self._google = None
        if creds is not None:
            self._google = service_account.Credentials.from_service_account_info(
                creds.service_account_info(self.token_uri), scopes=[SCOPE])

    async def token(self) -> str:
        """A valid access token, minted again only when the cached one is (nearly) expired."""
        if self._google is None:
            raise PushFailure("no FCM credentials are configured", retry=True, credentials=True)
        async with self._refresh_lock:
            if not self._google.valid:  # google-auth counts a token near expiry as not valid
                try:
                    await asyncio.to_thread(self._google.refresh, Request(session=self._token_session))
                except auth_exceptions.RefreshError as e:
                    raise PushFailure(f"the token endpoint refused the service account: {_short(e)}",
                                      retry=True, credentials=True) from None
                except auth_exceptions.TransportError as e:
                    raise PushFailure(f"token endpoint unreachable: {_short(e)}", retry=True) from None
                self.token_refreshes += 1
        return str(self._google.token)

    async def send(self, message: dict[str, Any], validate_only: bool = False) -> dict[str, Any]:
        """Send one FCM message (``{"token", "data", "notification", ...}``)."""
        if self.credentials is None:
            raise PushFailure("no FCM credentials are configured", retry=True, credentials=True)
        token = await self.token()
        url = f"{self.base_url}/v1/projects/{self.credentials.project_id}/messages:send"
        body = {"message": message}
        if validate_only:
            body["validate_only"] = True
        if self._session is None:
            self._session = self.policy.client(self.timeout)
        try:
            async with self._session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
                text = await r.text()
                if 200 <= r.status < 300:
                    return json.loads(text) if text else {}
                raise _classify(r.status, text, retry_after_seconds(r.headers.get("Retry-After")))
        except UrlRefused as e:
            raise PushFailure(f"FCM URL refused by the outbound URL policy: {e}", retry=False) from None
        except (ClientError, TimeoutError, OSError) as e:
            reason = refusal(e)
            if reason is not None:
                raise PushFailure(f"FCM refused by the outbound URL policy: {reason}", retry=False) from None
            raise PushFailure(f"FCM unreachable: {describe_error(e)}", retry=True) from e

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._token_session.close()


def guarded_requests_session(policy: UrlPolicy) -> requests.Session:
    """A ``requests`` session for google-auth that reaches only addresses the policy allows,
    ignores proxy variables and follows no redirect."""
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = 0
    adapter = _GuardedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: UrlPolicy):
        self.policy = policy
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {  # type: ignore[attr-defined]
            "http": _guarded_pool(HTTPConnectionPool, HTTPConnection, self.policy),
            "https": _guarded_pool(HTTPSConnectionPool, HTTPSConnection, self.policy),
        }


def _guarded_pool(pool: type, connection: type, policy: UrlPolicy) -> type:
    class GuardedConnection(connection):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> Any:
            sock = super()._new_conn()
            peer = sock.getpeername()[0]
            if not _is_ip(self.host) and not policy.address_allowed(peer):  # a literal was checked already
                sock.close()
                raise OSError(f"{self.host} resolved to {peer}, which the outbound URL policy refuses")
            return sock

    return type(f"Guarded{pool.__name__}", (pool,), {"ConnectionCls": GuardedConnection})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _classify(status: int, text: str, retry_after: float | None) -> PushFailure:
    code = _error_code(text) or str(status)
    reason = f"FCM answered HTTP {status} {code}"
    if code in DROP_TOKEN or status in (400, 404):
        return PushFailure(reason, retry=False, drop_token=True)
    if status in (401, 403):
        return PushFailure(reason, retry=True, credentials=True)
    if status == 429 or status >= 500:
        return PushFailure(reason, retry=True, retry_after=retry_after)
    return PushFailure(reason, retry=False)


def _error_code(text: str) -> str | None:
    """The FCM error code (``UNREGISTERED``...) or the Google status of an error body."""
    try:
        error = json.loads(text).get("error", {})
    except (ValueError, AttributeError):
        return None
    for detail in error.get("details", []) or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            return str(detail["errorCode"])
    return error.get("status")


def _short(e: Exception) -> str:
    text = str(e)
    return text if len(text) < 200 else text[:200] + "…"
