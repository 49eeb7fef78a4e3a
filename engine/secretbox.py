"""Encryption at rest for secrets the engine keeps (FCM private keys).

The data-encryption key comes from ``CALLBACK_ENGINE_SECRET_KEY`` (or ``..._FILE``), otherwise it
is generated once into the data folder (mode 0600). The database alone never reveals a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

ENV = "CALLBACK_ENGINE_SECRET_KEY"


class SecretBox:
    def __init__(self, key: bytes):
        self._fernet = Fernet(key)
        self._key = key

    def derive(self, purpose: str) -> bytes:
        """A key for another use (e.g. Basic HTTP capabilities), bound to ``purpose``, so one data
        key serves several uses without any of them revealing it."""
        return hmac.new(self._key, b"callback-engine:" + purpose.encode("utf-8"), hashlib.sha256).digest()

    @classmethod
    def for_data_dir(cls, data_dir: Path, env: dict[str, str] | None = None) -> SecretBox:
        env = dict(os.environ if env is None else env)
        if env.get(ENV):
            return cls(env[ENV].encode())
        if env.get(ENV + "_FILE"):
            return cls(Path(env[ENV + "_FILE"]).read_bytes().strip())
        path = data_dir / "secret.key"
        if not path.is_file():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ValueError("stored secret cannot be decrypted with this engine's secret key") from None
