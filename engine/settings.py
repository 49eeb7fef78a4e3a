"""Engine settings: embedded defaults < ``config/engine.toml`` < environment < command line.

Secrets (API keys, later credentials) come only from the environment or files, never from the
command line or the settings file.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
ENV_PREFIX = "CALLBACK_ENGINE_"
#: Settings that are secrets: from ``CALLBACK_ENGINE_<NAME>`` or ``..._FILE`` only.
SECRETS = ("admin_key", "client_key", "developer_key", "platform_key")
MIN_PLATFORM_KEY = 16  # characters: a shared secret guessable in a few tries protects nothing
MAX_JSON_DEPTH = 256  # the most max_json_depth may be: well within Python's recursion limit


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    config_dir: Path = REPO / "config"
    data_dir: Path = REPO / "data"
    flows_dir: Path = REPO / "scxml"
    database_url: str = ""  # empty: SQLite in the data folder
    persistence: bool = True
    flow_watch_interval: float = 1.0
    max_body_bytes: int = 256 * 1024
    max_keys: int = 200
    max_key_length: int = 200
    max_value_length: int = 64 * 1024
    max_json_depth: int = 32  # objects/arrays nested deeper in any JSON input: 400
    developers_upload_python_flows: bool = False  # python flows run as engine code: administrator only
    durability_timeout: float = 10.0  # a change not stored within this answers 503
    ready_max_backlog_age: float = 5.0  # /health/ready fails when changes wait longer to be stored
    max_microsteps: int = 10_000
    max_invoke_depth: int = 16
    macrosteps_per_turn: int = 100  # then a session yields to the event loop (fairness)
    turn_seconds: float = 0.02  # ...or after this long, whichever comes first
    max_foreach_items: int = 10_000  # <foreach> iterations in one macrostep
    max_sends_per_second: int = 1_000  # <send> events one session may dispatch per second
    # A session whose stored state (its snapshot's JSON) would be larger is failed (its callback
    # completes FAIL_ERROR): every macrostep writes it again, and memory holds it while it runs.
    max_session_state_bytes: int = 1024 * 1024
    # Group commit: while busy (a batch of at least 8 sessions' changes), a batch is written at
    # most this often, so more changes share it (less CPU per callback); 0 writes at once.
    commit_window_seconds: float = 0.02
    # The ECMAScript sandbox (engine.scxml.ecmascript.SandboxLimits; the defaults are its own):
    ecmascript_cpu_seconds: float = 0.2  # CPU time one evaluation (condition, expression, script) may use
    ecmascript_memory_bytes: int = 32 * 1024 * 1024  # what one session's JavaScript context may allocate
    ecmascript_live_contexts: int = 256  # contexts kept between events (least recently used dropped first)
    ecmascript_idle_seconds: float = 2.0  # an idle session's context is dropped after this (rebuilt on need)
    log_level: str = "INFO"
    log_format: str = "text"  # or "json"
    shutdown_timeout: float = 10.0
    retention_days: float = 30.0  # ended sessions, completed callbacks, dead letters; 0 keeps all
    fcm_base_url: str = "https://fcm.googleapis.com"  # local fakes in tests
    fcm_token_uri: str = "https://oauth2.googleapis.com/token"
    basichttp_max_attempts: int = 4  # tries of one Basic HTTP send while failures are transient
    basichttp_retry_seconds: float = 5.0  # ...and never retrying past this long after the first
    # The console's sign-in sessions (engine/console/session.py):
    console_idle_minutes: float = 30.0  # a session unused this long ends
    console_max_hours: float = 12.0  # ...and every session ends this long after sign-in
    console_secure_cookie: bool = False  # mark the cookie Secure even on http (the engine behind a TLS proxy)
    # A cluster of engine nodes on one PostgreSQL database (issue 14; SQLite is always one process):
    cluster: bool = True  # read only with a PostgreSQL database_url; false runs PostgreSQL single-process
    node_name: str = ""  # this node's name in the cluster; empty: host:port (the host name for 0.0.0.0)
    public_url: str = ""  # how clients reach the cluster (the load balancer); empty: base_url
    internal_url: str = ""  # how the other nodes reach this one; empty: base_url
    platform_url: str = ""  # the platform process; empty: the embedded simulator (a cluster of one)
    platform_connect_timeout: float = 10.0  # at start, how long to wait for the platform process's clock
    cluster_lease_seconds: float = 10.0  # a node that stops heartbeating loses its partitions after this
    cluster_heartbeat_seconds: float = 2.0  # at most a quarter of the lease
    cluster_audit: bool = False  # record every snapshot write (session_writes), for tests and audits
    cluster_forward_timeout: float = 10.0  # a request forwarded to the node holding its partition: its answer within
    admin_key: str | None = field(default=None, repr=False)
    client_key: str | None = field(default=None, repr=False)
    developer_key: str | None = field(default=None, repr=False)
    # The platform link's shared secret (engine/platform/auth.py): the platform process refuses a
    # node without it, and a node believes only a platform that proves it holds it too.
    platform_key: str | None = field(default=None, repr=False)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'engine.db'}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def in_cluster(self) -> bool:
        """Whether this engine is a cluster node: a PostgreSQL database, unless ``cluster`` is off."""
        return self.cluster and self.db_url.startswith("postgresql")

    @property
    def node(self) -> str:
        """This node's name: ``node_name``, or host:port (a wildcard host says which machine)."""
        if self.node_name:
            return self.node_name
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{host}:{self.port}"

    def check(self, where: str = "settings") -> None:
        """Refuse values that cannot work together; called once every source is applied."""
        if self.cluster_lease_seconds <= 0:
            raise ValueError(f"{where}: cluster_lease_seconds must be positive")
        if self.cluster_forward_timeout <= 0:
            raise ValueError(f"{where}: cluster_forward_timeout must be positive")
        if not 0 < self.cluster_heartbeat_seconds <= self.cluster_lease_seconds / 4:
            # Four heartbeats per lease: one slow or lost heartbeat must not cost the lease.
            raise ValueError(f"{where}: cluster_heartbeat_seconds must be positive and at most a quarter "
                             f"of cluster_lease_seconds ({self.cluster_lease_seconds / 4:g})")
        for key in ("public_url", "internal_url", "platform_url"):
            value = getattr(self, key)
            if value and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
                raise ValueError(f"{where}: {key} must be an http(s) URL, not {value!r}")
        if not 0 < self.durability_timeout < math.inf:  # NaN fails too: a wait with no limit
            raise ValueError(f"{where}: durability_timeout must be a positive number of seconds")
        if not 1 <= self.max_json_depth <= MAX_JSON_DEPTH:
            # Deeper than that, recursive walks of a value (the snapshot codec, a flow's
            # expressions) can run out of Python's stack far from the request that brought it.
            raise ValueError(f"{where}: max_json_depth must be between 1 and {MAX_JSON_DEPTH}")
        if not 0 <= self.commit_window_seconds <= 1:
            raise ValueError(f"{where}: commit_window_seconds must be between 0 and 1")
        if self.commit_window_seconds >= min(self.durability_timeout, self.ready_max_backlog_age):
            # a busy engine's every change waits up to the window: it would time out, or never be ready
            raise ValueError(f"{where}: commit_window_seconds must be less than durability_timeout and "
                             "ready_max_backlog_age")
        if self.max_session_state_bytes < 64 * 1024:
            raise ValueError(f"{where}: max_session_state_bytes must be at least 65536 (64 KiB)")
        if self.platform_key is not None and len(self.platform_key) < MIN_PLATFORM_KEY:
            raise ValueError(f"{where}: platform_key must be at least {MIN_PLATFORM_KEY} characters")
        if self.platform_url and not self.platform_key and not loopback(self.platform_url):
            # Over a network, whatever answers at that address would be believed (and anyone
            # could connect to the platform in this node's name): a key or nothing.
            raise ValueError(f"{where}: platform_url {self.platform_url} is not on this machine: set "
                             f"platform_key ({ENV_PREFIX}PLATFORM_KEY or {ENV_PREFIX}PLATFORM_KEY_FILE), "
                             "the same as the platform process's")
        if len(self.node_name) > 200 or any(c.isspace() for c in self.node_name):
            raise ValueError(f"{where}: node_name must be at most 200 characters, without spaces")

    @classmethod
    def load(cls, config_dir: Path | None = None, env: dict[str, str] | None = None,
             **overrides: Any) -> Settings:
        env = dict(os.environ if env is None else env)
        settings = cls()
        if config_dir is None and ENV_PREFIX + "CONFIG_DIR" in env:
            config_dir = Path(env[ENV_PREFIX + "CONFIG_DIR"])
        if config_dir is not None:
            settings.config_dir = Path(config_dir)
        path = settings.config_dir / "engine.toml"
        if path.is_file():
            with open(path, "rb") as f:
                table = tomllib.load(f).get("engine", {})
            for key in SECRETS:
                if key in table:
                    raise ValueError(f"{path}: {key} is a secret; set {ENV_PREFIX}{key.upper()} instead")
            settings._apply(table, str(path))
        settings._apply({f.name: env[ENV_PREFIX + f.name.upper()] for f in fields(cls)
                         if ENV_PREFIX + f.name.upper() in env}, "environment")
        for key in SECRETS:
            file_var = f"{ENV_PREFIX}{key.upper()}_FILE"
            if file_var in env:
                setattr(settings, key, Path(env[file_var]).read_text().strip())
        if settings.platform_key == "":  # an empty variable is no key (and says so at check)
            settings.platform_key = None
        settings._apply({k: v for k, v in overrides.items() if v is not None}, "command line")
        settings.check()
        return settings

    def _apply(self, values: dict[str, Any], where: str) -> None:
        types = {f.name: f.type for f in fields(self)}
        for key, raw in values.items():
            if key not in types:
                raise ValueError(f"{where}: unknown setting {key!r}")
            setattr(self, key, _convert(key, raw, str(types[key]), where))


def platform_key_from(env: dict[str, str] | None = None) -> str | None:
    """The platform process's ``platform_key``, from the same variables a node reads (the
    process has no settings file of its own beyond simulator.toml, which holds no secret)."""
    env = dict(os.environ if env is None else env)
    value = env.get(ENV_PREFIX + "PLATFORM_KEY")
    if ENV_PREFIX + "PLATFORM_KEY_FILE" in env:
        value = Path(env[ENV_PREFIX + "PLATFORM_KEY_FILE"]).read_text().strip()
    if value and len(value) < MIN_PLATFORM_KEY:
        raise ValueError(f"platform_key must be at least {MIN_PLATFORM_KEY} characters")
    return value or None


def loopback(address: str) -> bool:
    """Whether ``address`` (a host, or a URL's host) is this machine only: ``localhost`` or a
    loopback IP. A name that only resolves there today is not counted: DNS may change."""
    host = (urlsplit(address).hostname or "") if "://" in address else address.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _convert(key: str, raw: Any, typ: str, where: str) -> Any:
    try:
        if typ == "bool":
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ == "int":
            return int(raw)
        if typ == "float":
            return float(raw)
        if typ == "Path":
            return Path(raw)
        return str(raw)
    except ValueError:
        raise ValueError(f"{where}: setting {key!r} must be a {typ}, not {raw!r}") from None
