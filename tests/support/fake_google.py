"""Local fakes of Google's OAuth token endpoint and of FCM HTTP v1, on loopback.

The token endpoint verifies the RS256 JWT assertion google-auth sends with the public half of a
key pair the test generated; FCM checks the bearer token it minted and the message, and answers
whatever the test scripted (UNREGISTERED, INVALID_ARGUMENT, 429 with Retry-After, 5xx, 401...).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.loopback import serve

PROJECT = "fcm-client-11959"
EMAIL = f"firebase-adminsdk-rkbys@{PROJECT}.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def new_key() -> tuple[str, rsa.RSAPublicKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def fcm_error(status: int, code: str, google_status: str) -> dict:
    return {"error": {"code": status, "message": code, "status": google_status,
                      "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                   "errorCode": code}]}}


@dataclass
class FakeGoogle:
    public_key: rsa.RSAPublicKey
    email: str = EMAIL
    project: str = PROJECT
    token_lifetime: int = 3600
    tokens: set[str] = field(default_factory=set)
    mints: int = 0
    refused_mints: int = 0
    reject_assertions: bool = False
    messages: list[dict] = field(default_factory=list)  # accepted sends (validate_only included)
    answers: list[tuple[int, dict, dict]] = field(default_factory=list)  # scripted, consumed first
    by_device: dict[str, tuple[int, dict]] = field(default_factory=dict)  # device token -> answer
    fail_all: int | None = None  # answer every send with this status (an outage)
    gate: asyncio.Event | None = None  # while set and not open, sends wait for it (an attempt in flight)
    held: int = 0  # sends waiting at the gate now
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return self.base + "/token"

    async def start(self) -> FakeGoogle:
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_post("/v1/projects/{project}/messages:send", self.send)
        self.runner, self.port = await serve(app, self.port)
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        problem = self._check_assertion(str(form.get("assertion", "")))
        if problem or self.reject_assertions:
            self.refused_mints += 1
            return web.json_response({"error": "invalid_grant", "error_description": problem or "refused"},
                                     status=400)
        self.mints += 1
        token = f"ya29.fake-{self.mints}"
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

    def _check_assertion(self, assertion: str) -> str | None:
        try:
            head, body, sig = assertion.split(".")
            header, claims = json.loads(_b64(head)), json.loads(_b64(body))
        except ValueError:
            return "assertion is not a JWT"
        if header.get("alg") != "RS256":
            return "not RS256"
        try:
            self.public_key.verify(_b64(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return "bad signature"
        now = time.time()
        if claims.get("iss") != self.email:
            return "wrong issuer"
        # google-auth always names Google's token endpoint as the audience, wherever it posts.
        if claims.get("aud") != "https://oauth2.googleapis.com/token":
            return "wrong audience"
        if SCOPE not in str(claims.get("scope", "")).split():
            return "missing scope"
        if not claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0):
            return "expired assertion"
        return None

    async def send(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return web.json_response(fcm_error(401, "THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED"), status=401)
        if request.match_info["project"] != self.project:
            return web.json_response(fcm_error(403, "SENDER_ID_MISMATCH", "PERMISSION_DENIED"), status=403)
        body = await request.json()
        if self.gate is not None:
            self.held += 1
            try:
                await self.gate.wait()
            finally:
                self.held -= 1
        message = body.get("message", {})
        if not message.get("token") or not all(isinstance(v, str) for v in message.get("data", {}).values()):
            return web.json_response(fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), status=400)
        if self.fail_all is not None:
            return web.json_response(fcm_error(self.fail_all, "UNAVAILABLE", "UNAVAILABLE"), status=self.fail_all)
        if self.answers:
            status, payload, headers = self.answers.pop(0)
            if status >= 300:
                return web.json_response(payload, status=status, headers=headers)
        if message["token"] in self.by_device:
            status, payload = self.by_device[message["token"]]
            return web.json_response(payload, status=status)
        self.messages.append(body)
        return web.json_response({"name": f"projects/{self.project}/messages/{len(self.messages)}"})

    def events(self, device: str | None = None) -> list[str]:
        return [m["message"]["data"]["event"] for m in self.messages
                if not m.get("validate_only") and (device is None or m["message"]["token"] == device)]
