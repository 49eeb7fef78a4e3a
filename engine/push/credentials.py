"""FCM credentials: one Firebase project per deployment (seed 002, SPEC 7).

Set and replaced through the admin API by the administrator and developer roles; validated first
(the key parses as a PEM private key, the email and project id have the right shape); the private
key is stored encrypted and never shown again: reads show only a few characters.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ..callbacks.records import BadRequest
from ..secretbox import SecretBox

PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
APP_ID = re.compile(r"^1:(\d{6,20}):(web|android|ios):[0-9a-f]{6,40}$")
API_KEY = re.compile(r"^AIza[0-9A-Za-z_-]{35}$")
SENDER_ID = re.compile(r"^\d{6,20}$")


@dataclass
class Credentials:
    project_id: str
    client_email: str
    private_key: str
    updated_at: float = 0.0
    status: str = "unknown"  # "ok", "failing" (401/403 from FCM or the token endpoint), "unknown"
    status_reason: str = ""

    def service_account_info(self, token_uri: str) -> dict[str, Any]:
        return {"type": "service_account", "project_id": self.project_id, "private_key": self.private_key,
                "client_email": self.client_email, "token_uri": token_uri}

    def shown(self) -> dict[str, Any]:
        """What a read may reveal: the project, and a few characters of the email and the key."""
        local, _, domain = self.client_email.partition("@")
        body = "".join(self.private_key.strip().splitlines()[1:-1])
        return {"project_id": self.project_id, "client_email": f"{local[:3]}…@…{domain[-10:]}",
                "private_key": f"…{body[-6:]}" if body else "…", "updated_at": self.updated_at,
                "status": self.status, "status_reason": self.status_reason}


def validate(body: dict[str, Any]) -> Credentials:
    """Credentials from an admin request; ``BadRequest`` names the field that is wrong."""
    project = body.get("project_id") or body.get("project_name")
    email, key = body.get("client_email"), body.get("private_key")
    if not isinstance(project, str) or not PROJECT_ID.match(project):
        raise BadRequest("project_id must be a Firebase project id: 6 to 30 lowercase letters, digits or "
                         "hyphens, starting with a letter")
    if not isinstance(email, str) or not EMAIL.match(email):
        raise BadRequest("client_email must be the service account's email address")
    if not isinstance(key, str) or "PRIVATE KEY" not in key:
        raise BadRequest("private_key must be the PEM private key from the service account file")
    key = key.replace("\\n", "\n").strip() + "\n"
    try:
        load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError) as e:
        raise BadRequest(f"private_key does not parse as a PEM private key: {e}") from None
    return Credentials(project, email, key, updated_at=time.time())


def check_test_fields(body: dict[str, Any]) -> tuple[str, str, str]:
    """The Firebase App ID, public API key and sender ID of the test call, checked as the seed
    describes them: the App ID must carry the sender ID."""
    app_id, api_key, sender = body.get("app_id"), body.get("api_key"), body.get("sender_id")
    if not isinstance(sender, str) or not SENDER_ID.match(sender):
        raise BadRequest("sender_id must be the Firebase sender ID (digits)")
    if not isinstance(app_id, str) or not (m := APP_ID.match(app_id)):
        raise BadRequest("app_id must be a Firebase App ID such as 1:<sender id>:web:<hex>")
    if m.group(1) != sender:
        raise BadRequest(f"app_id {app_id} does not belong to sender_id {sender}")
    if not isinstance(api_key, str) or not API_KEY.match(api_key):
        raise BadRequest("api_key must be a Firebase public API key (AIza followed by 35 characters)")
    return app_id, api_key, sender


def seal(creds: Credentials, box: SecretBox) -> str:
    data = asdict(creds)
    data["private_key"] = box.seal(creds.private_key)
    return json.dumps(data)


def unseal(stored: str, box: SecretBox) -> Credentials:
    data = json.loads(stored)
    data["private_key"] = box.open(data["private_key"])
    return Credentials(**data)
