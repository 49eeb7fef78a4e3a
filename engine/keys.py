"""Named API keys: many per role, stored hashed, checked in constant time.

``data/keys.json`` (mode 0600) holds, per key, its name, role, optional service scope, creation
and rotation times, a short prefix to recognise it by, and the SHA-256 of the secret; never the
secret. A plain fast hash is enough because every key this module makes is 256 random bits:
nobody can search that space, salted or slow hashing would only make every request cost more.
Keys set by the operator in the environment may be weak; they are never written anywhere (kept
in memory, hashed the same way) and their variables are removed from the process environment.

The file may be changed while the engine runs (the admin API, or ``run_engine.py keys`` offline):
writers take ``keys.json.lock`` and write atomically; the engine notices a changed file (checked
at most once a second, and at once when a key is not found) and reloads it. A failed write
changes nothing live.

In a cluster the keys are a table of the database instead (``share``: ``engine/storage/api_keys.py``
behind the ``KeyRows`` port): a change is made there, under the table's lock, and every node reads
the table again when it hears of it; the first node of a cluster brings the keys of its file.
Keys from the environment stay the node's own, as they are today.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .atomic_file import write_atomic
from .roles import ADMINISTRATOR, CLIENT, DEVELOPER, ROLES
from .settings import ENV_PREFIX, SECRETS, Settings

log = logging.getLogger("engine.keys")
T = TypeVar("T")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SECRET_PREFIX = "cbe_"
SHOWN_CHARS = 8  # "cbe_" and four random characters: enough to tell keys apart, useless to guess
MAX_PRESENTED = 512
MAX_SERVICES = 100
RECHECK_SECONDS = 1.0
ENV_NAMES = {ADMINISTRATOR: "env-administrator", CLIENT: "env-client", DEVELOPER: "env-developer"}
ENV_SETTINGS = {ADMINISTRATOR: "admin_key", CLIENT: "client_key", DEVELOPER: "developer_key"}
INITIAL_NAME = "admin"
CHANGE_TIMEOUT = 20.0  # seconds a change of a cluster's keys may take (then 503, nothing changed)


class KeyRows(Protocol):
    """A cluster's table of keys, as rows (``ApiKey.row()``)."""

    async def read(self) -> list[dict[str, Any]]: ...

    async def change(self, edit: Callable[[list[dict[str, Any]]], tuple[T, list[dict[str, Any]]]]) -> T: ...


class KeyRequestError(ValueError):
    """A key change that cannot be made as asked; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    sha256: str  # hex digest of the secret
    prefix: str
    created: float
    rotated: float | None = None
    services: tuple[str, ...] | None = None  # a client key scoped to these services
    source: str = field(default="file", compare=False)  # or "environment"

    def public(self, last_used: float | None) -> dict[str, Any]:
        """What a listing shows: everything but the hash."""
        return {"name": self.name, "role": self.role, "prefix": self.prefix or None,
                "services": list(self.services) if self.services is not None else None,
                "created": self.created, "rotated": self.rotated, "last_used": last_used,
                "source": self.source}

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("source")
        row["services"] = list(self.services) if self.services is not None else None
        return row


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def make_key(name: str, role: str, secret: str, services: tuple[str, ...] | None = None,
             source: str = "file") -> ApiKey:
    # An operator's key may be short: showing part of it would give part of it away.
    prefix = secret[:SHOWN_CHARS] if source == "file" else ""
    return ApiKey(name=name, role=role, sha256=digest(secret).hex(), prefix=prefix,
                  created=time.time(), services=services, source=source)


def check_request(name: Any, role: Any, services: Any) -> tuple[str, str, tuple[str, ...] | None]:
    """Validate what a caller asks for a new key; ``KeyRequestError`` (400) says what is wrong."""
    if not isinstance(name, str) or not NAME.match(name):
        raise KeyRequestError(400, "name must be 1 to 64 letters, digits, '.', '_' or '-', "
                                   "starting with a letter or digit")
    if name.startswith("env-"):
        raise KeyRequestError(400, "names starting with 'env-' are reserved for keys from the environment")
    if not isinstance(role, str) or role not in ROLES:
        raise KeyRequestError(400, f"role must be one of {', '.join(ROLES)}")
    if services is None:
        return name, role, None
    if role != CLIENT:
        raise KeyRequestError(400, "only client keys can be scoped to services")
    if isinstance(services, str):
        services = [s.strip() for s in services.split(",")]
    if not isinstance(services, list) or not services or len(services) > MAX_SERVICES:
        raise KeyRequestError(400, f"services must be a list of 1 to {MAX_SERVICES} service names")
    for s in services:
        if not isinstance(s, str) or not NAME.match(s):
            raise KeyRequestError(400, f"services: {str(s)[:80]!r} is not a service name")
    return name, role, tuple(dict.fromkeys(services))


class KeyStore:
    """The keys a running engine (or the offline command) accepts."""

    def __init__(self, path: Path, bootstrap: Iterable[ApiKey] = ()):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.bootstrap = tuple(bootstrap)
        self.stored: tuple[ApiKey, ...] = ()
        self._digests: tuple[tuple[bytes, ApiKey], ...] = ()  # what a request is checked against
        self.last_used: dict[str, float] = {}
        self._seen: tuple[int, int, int] | None = None
        self._unreadable: tuple[int, int, int] | None = None  # a changed file that failed to load
        self.legacy = False  # the file is still in the old plain-text form
        self._checked = 0.0
        self._mutex = threading.Lock()  # writers may run in a worker thread
        self._table: KeyRows | None = None  # a cluster's table (share); None: the file
        self._loop: asyncio.AbstractEventLoop | None = None  # where the table's coroutines run
        names = [k.name for k in self.bootstrap]
        if len(names) != len(set(names)):
            raise ValueError("two bootstrap keys share a name")
        with self._mutex:
            self._load()

    # -- reading ----------------------------------------------------------------------------
    @property
    def keys(self) -> tuple[ApiKey, ...]:
        return self.bootstrap + self.stored

    def authenticate(self, presented: str) -> ApiKey | None:
        """The key whose secret this is, or None. Every key is compared, in constant time each."""
        if not presented or len(presented) > MAX_PRESENTED:
            return None
        self.refresh()
        found = self._match(presented)
        if found is None and self.refresh(force=True):
            found = self._match(presented)
        if found is not None:
            self.last_used[found.name] = time.time()
        return found

    def _match(self, presented: str) -> ApiKey | None:
        wanted = digest(presented)
        found = None
        for known, key in self._digests:  # no early exit: the time does not depend on which matched
            if hmac.compare_digest(known, wanted):
                found = key
        return found

    def get(self, name: str) -> ApiKey | None:
        return next((k for k in self.keys if k.name == name), None)

    def listing(self) -> list[dict[str, Any]]:
        return [k.public(self.last_used.get(k.name)) for k in self.keys]

    def refresh(self, force: bool = False) -> bool:
        """Reload the file if it changed since it was read; True if anything was reloaded. A
        cluster's table is read again when a change is announced (``reread``), not here."""
        if self._table is not None:
            return False
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_SECONDS:
            return False
        if not self._mutex.acquire(blocking=False):
            return False  # a writer is at work and will leave the new state in place
        try:
            self._checked = now
            seen = self._stat()
            if seen in (self._seen, self._unreadable):
                return False
            try:
                self._load()
            except (OSError, ValueError) as e:
                self._unreadable = seen  # said once, not on every request
                log.error("%s changed but cannot be read (%s); keeping the keys in use", self.path, e)
                return False
            return True
        finally:
            self._mutex.release()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _set_stored(self, stored: tuple[ApiKey, ...]) -> None:
        self.stored = stored
        self._digests = tuple((bytes.fromhex(k.sha256), k) for k in self.bootstrap + stored)

    def _load(self) -> None:
        seen = self._stat()
        stored, self.legacy = parse_file(self.path.read_bytes()) if seen is not None else ([], False)
        taken = {k.name for k in self.bootstrap}
        self._set_stored(tuple(k for k in stored if k.name not in taken))
        self._seen = seen

    # -- in a cluster ---------------------------------------------------------------------------
    async def share(self, table: KeyRows) -> None:
        """Serve the keys of a cluster's table from now on. A node finding it empty (the first of a
        new cluster) puts the keys of its file in it first."""
        mine = [k.row() for k in self.stored]

        def first_fill(rows: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
            return (len(mine), mine) if not rows else (0, rows)

        if mine and await table.change(first_fill):
            log.warning("the cluster had no API keys: this node's %d keys of %s are now the cluster's",
                        len(mine), self.path)
        self._table, self._loop = table, asyncio.get_running_loop()
        await self.reread()

    async def reread(self, _name: str = "") -> None:
        """Read the cluster's table again (a change was announced, or the listener reconnected)."""
        assert self._table is not None
        taken = {k.name for k in self.bootstrap}
        rows = await self._table.read()
        self._set_stored(tuple(k for k in map(key_from_row, rows) if k.name not in taken))

    def _change_shared(self, edit: Callable[[list[ApiKey]], T]) -> T:
        """``_change`` in a cluster; from a worker thread (the table's coroutine runs on the loop)."""
        assert self._table is not None and self._loop is not None
        taken = {k.name for k in self.bootstrap}
        after: list[ApiKey] = []

        def on_rows(rows: list[dict[str, Any]]) -> tuple[T, list[dict[str, Any]]]:
            keys = [k for k in map(key_from_row, rows) if k.name not in taken]
            result = edit(keys)
            after[:] = keys
            return result, [k.row() for k in keys]

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("a cluster's keys are changed from a worker thread (asyncio.to_thread)")
        with self._mutex:
            try:
                result = asyncio.run_coroutine_threadsafe(self._table.change(on_rows), self._loop).result(
                    CHANGE_TIMEOUT)
            except KeyRequestError:
                raise
            except Exception as e:  # the database failed or did not answer: nothing changed
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise KeyRequestError(503, f"the keys could not be saved ({reason}); nothing changed") from e
            self._set_stored(tuple(after))
            return result

    # -- changing ------------------------------------------------------------------------------
    def create(self, name: str, role: str, services: tuple[str, ...] | None = None) -> tuple[ApiKey, str]:
        secret = new_secret()
        key = make_key(name, role, secret, services)

        def add(keys: list[ApiKey]) -> ApiKey:
            if any(k.name == name for k in self.bootstrap + tuple(keys)):
                raise KeyRequestError(409, f"a key named {name!r} exists; rotate or revoke it")
            keys.append(key)
            return key

        return self._change(add), secret

    def rotate(self, name: str) -> tuple[ApiKey, str]:
        """A new secret for the key; the old one stops working at once."""
        secret = new_secret()

        def swap(keys: list[ApiKey]) -> ApiKey:
            i = self._index(keys, name)
            keys[i] = replace(keys[i], sha256=digest(secret).hex(), prefix=secret[:SHOWN_CHARS],
                              rotated=time.time())
            return keys[i]

        return self._change(swap), secret

    def revoke(self, name: str) -> ApiKey:
        def drop(keys: list[ApiKey]) -> ApiKey:
            i = self._index(keys, name)
            admins = [k for k in self.bootstrap + tuple(keys) if k.role == ADMINISTRATOR]
            if keys[i].role == ADMINISTRATOR and len(admins) == 1:
                raise KeyRequestError(409, f"{name!r} is the last administrator key; create another first")
            return keys.pop(i)

        return self._change(drop)

    def rewrite(self) -> None:
        """Write the keys as they are (in the current, hashed form)."""
        self._change(lambda keys: None)

    def ensure_administrator(self, folder: Path) -> Path | None:
        """First start: with no administrator key at all, make one and write its secret, once, to
        a 0600 file for the operator to read and delete. Returns that file, or None."""
        if any(k.role == ADMINISTRATOR for k in self.keys):
            return None
        name = INITIAL_NAME if self.get(INITIAL_NAME) is None else f"{INITIAL_NAME}-{secrets.token_hex(3)}"
        secret = new_secret()
        key = make_key(name, ADMINISTRATOR, secret)

        def add_if_none(keys: list[ApiKey]) -> bool:
            # Checked again on the keys as they are now: nodes of a new cluster start together.
            if any(k.role == ADMINISTRATOR for k in self.bootstrap + tuple(keys)):
                return False
            if any(k.name == name for k in keys):
                raise KeyRequestError(409, f"a key named {name!r} exists; rotate or revoke it")
            keys.append(key)
            return True

        if not self._change(add_if_none):
            return None
        target = folder / "initial-admin-key"
        write_atomic(target, (secret + "\n").encode())
        log.warning("no administrator key existed: created %r; its secret is in %s (read it, then delete "
                    "the file)", key.name, target)
        return target

    def _index(self, keys: list[ApiKey], name: str) -> int:
        for i, k in enumerate(keys):
            if k.name == name:
                return i
        if any(k.name == name for k in self.bootstrap):
            raise KeyRequestError(409, f"{name!r} comes from the environment; change the variable and restart")
        raise KeyRequestError(404, f"no key named {name!r}")

    def _change(self, edit: Callable[[list[ApiKey]], T]) -> T:
        """Apply ``edit`` to the stored keys under the file lock; live only once written."""
        if self._table is not None:
            return self._change_shared(edit)
        with self._mutex, self._file_lock():
            if self._stat() != self._seen:
                try:
                    self._load()  # someone else wrote since: build on what is there now
                except (OSError, ValueError) as e:
                    raise KeyRequestError(503, f"{self.path} cannot be read ({e}); nothing changed") from e
            keys = list(self.stored)
            result = edit(keys)
            data = json.dumps({"version": 1, "keys": [k.row() for k in keys]}, indent=1).encode()
            try:
                write_atomic(self.path, data)
            except OSError as e:
                reason = e.strerror or type(e).__name__
                raise KeyRequestError(503, f"the keys could not be saved ({reason}); nothing changed") from e
            self._set_stored(tuple(keys))
            self._seen = self._stat()
            return result

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise KeyRequestError(503, f"the keys could not be locked ({e.strerror}); nothing changed") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def parse_file(raw: bytes) -> tuple[list[ApiKey], bool]:
    """keys.json, and whether it is the plain-text form older versions wrote ({role: secret});
    that form is read too, and hashed by the next write (``open_keys`` does that at start)."""
    data = json.loads(raw)
    if isinstance(data, dict) and "version" not in data and all(isinstance(v, str) for v in data.values()):
        return [make_key(role, role, secret) for role, secret in data.items() if role in ROLES], True
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("keys"), list):
        raise ValueError("not a keys file this engine knows (expected version 1)")
    keys = []
    for row in data["keys"]:
        try:
            keys.append(key_from_row(row))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"a key entry is malformed: {e}") from None
    return keys, False


def key_from_row(row: dict[str, Any]) -> ApiKey:
    """A stored key (a file's entry or a cluster's row); ``KeyError``/``TypeError``/``ValueError``."""
    services = row.get("services")
    key = ApiKey(name=str(row["name"]), role=str(row["role"]), sha256=str(row["sha256"]),
                 prefix=str(row["prefix"]), created=float(row["created"]),
                 rotated=float(row["rotated"]) if row.get("rotated") is not None else None,
                 services=tuple(services) if services is not None else None)
    bytes.fromhex(key.sha256)
    return key


def key_file(settings: Settings) -> Path:
    return settings.data_dir / "keys.json"


def bootstrap_keys(settings: Settings) -> list[ApiKey]:
    """The keys given in the environment (``CALLBACK_ENGINE_ADMIN_KEY``...), one per role."""
    found = []
    for role, attr in ENV_SETTINGS.items():
        secret = getattr(settings, attr)
        if secret:
            found.append(make_key(ENV_NAMES[role], role, secret, source="environment"))
    return found


def open_keys(settings: Settings) -> KeyStore:
    """The key store of a data folder; a file still in the old plain-text form is hashed now."""
    store = KeyStore(key_file(settings), bootstrap_keys(settings))
    if store.legacy:
        store.rewrite()
        log.warning("%s held plain-text keys; they are now stored hashed", store.path)
    return store


def scrub_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove the key variables (the API keys, the platform link's) from the process environment
    (subprocesses and flows then never see them); returns the names removed."""
    environ = os.environ if environ is None else environ
    removed = []
    for attr in SECRETS:
        for var in (f"{ENV_PREFIX}{attr.upper()}", f"{ENV_PREFIX}{attr.upper()}_FILE"):
            if environ.pop(var, None) is not None:
                removed.append(var)
    return removed
