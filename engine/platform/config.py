"""Simulator settings: dataclasses that validate themselves and round-trip through TOML and JSON.

Every field has an embedded default, so the engine runs with no ``config/simulator.toml``.
All durations are simulated seconds; ``time_scale`` says how much faster than the wall clock the
engine's one clock runs. Validation errors are ``ValueError`` naming the bad field by its path
(``queues.Callback_VQ.agents: ...``) so the admin API can answer 400 with it.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic_file import save
from .adapter import ANSWER, BUSY, NO_ANSWER, OUTCOMES


def _number(value: Any, name: str, *, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a number, not {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ValueError(f"{name}: must be {'>' if strict else '>='} {minimum:g}, not {value!r}")
    return float(value)


def _integer(value: Any, name: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, not {value!r}")
    return value


def _outcome(value: Any, name: str) -> str:
    if value not in OUTCOMES:
        raise ValueError(f"{name}: {value!r} is not a dial outcome (one of {', '.join(OUTCOMES)})")
    return value


def _table(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name}: must be a table/object, not {type(value).__name__}")
    return value


def _known_keys(data: dict[str, Any], cls: type, prefix: str) -> None:
    """Refuse unknown keys so a typo in the file or an admin PUT is not silently ignored."""
    names = {f.name for f in fields(cls)}
    for key in data:
        if key not in names:
            raise ValueError(f"{prefix}{key}: unknown setting")


@dataclass
class QueueConfig:
    """One virtual queue: how many agents serve it and how long they talk."""

    agents: int = 0
    handle_seconds: float = 180.0
    handle_jitter: float = 0.0  # each handle time is drawn uniformly within +- this many seconds

    def validate(self, prefix: str) -> None:
        _integer(self.agents, f"{prefix}agents")
        _number(self.handle_seconds, f"{prefix}handle_seconds", strict=True)
        _number(self.handle_jitter, f"{prefix}handle_jitter")
        if self.handle_jitter > self.handle_seconds:
            raise ValueError(f"{prefix}handle_jitter: must not exceed handle_seconds ({self.handle_seconds:g})")

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "") -> QueueConfig:
        data = _table(data, prefix.rstrip(".") or "queue")
        _known_keys(data, cls, prefix)
        conf = cls(**data)
        conf.validate(prefix)
        return conf

    def to_dict(self) -> dict[str, Any]:
        return {"agents": self.agents, "handle_seconds": self.handle_seconds, "handle_jitter": self.handle_jitter}


@dataclass
class DialRule:
    """Outcomes for customer numbers matching ``pattern`` (``re.search``; anchor it with ``^``).

    ``sequence``: the n-th dial of a number gets the n-th item, the last one repeats.
    ``probabilities``: outcome -> weight, drawn with the simulator's seeded random generator.
    """

    pattern: str
    sequence: list[str] | None = None
    probabilities: dict[str, float] | None = None

    def validate(self, prefix: str) -> None:
        if not isinstance(self.pattern, str) or not self.pattern:
            raise ValueError(f"{prefix}pattern: must be a non-empty regular expression")
        try:
            re.compile(self.pattern)
        except re.error as e:
            raise ValueError(f"{prefix}pattern: invalid regular expression {self.pattern!r}: {e}") from None
        if (self.sequence is None) == (self.probabilities is None):
            raise ValueError(f"{prefix}pattern: a rule needs exactly one of 'sequence' or 'probabilities'")
        if self.sequence is not None:
            if not isinstance(self.sequence, list) or not self.sequence:
                raise ValueError(f"{prefix}sequence: must be a non-empty list of outcomes")
            for i, item in enumerate(self.sequence):
                _outcome(item, f"{prefix}sequence[{i}]")
        if self.probabilities is not None:
            probs = _table(self.probabilities, f"{prefix}probabilities")
            if not probs:
                raise ValueError(f"{prefix}probabilities: must name at least one outcome")
            for key, weight in probs.items():
                _outcome(key, f"{prefix}probabilities")
                _number(weight, f"{prefix}probabilities.{key}")
            if sum(probs.values()) <= 0:
                raise ValueError(f"{prefix}probabilities: the weights must not all be zero")

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "") -> DialRule:
        data = _table(data, prefix.rstrip(".") or "dial rule")
        _known_keys(data, cls, prefix)
        if "pattern" not in data:
            raise ValueError(f"{prefix}pattern: missing")
        sequence = data.get("sequence")
        probabilities = data.get("probabilities")
        rule = cls(
            pattern=data["pattern"],
            sequence=list(sequence) if isinstance(sequence, (list, tuple)) else sequence,
            probabilities=dict(probabilities) if isinstance(probabilities, dict) else probabilities,
        )
        rule.validate(prefix)
        return rule

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pattern": self.pattern}
        if self.sequence is not None:
            out["sequence"] = list(self.sequence)
        if self.probabilities is not None:
            out["probabilities"] = dict(self.probabilities)
        return out


def _default_queues() -> dict[str, QueueConfig]:
    return {
        "Callback_VQ": QueueConfig(agents=3, handle_seconds=180.0),
        "Support_VQ": QueueConfig(agents=2, handle_seconds=300.0, handle_jitter=60.0),
    }


def _default_rules() -> list[DialRule]:
    return [
        DialRule(pattern=r"^\+1555000", sequence=[BUSY]),
        DialRule(pattern=r"^\+1555001", sequence=[BUSY, ANSWER]),
        DialRule(pattern=r"^\+1555002", sequence=[NO_ANSWER]),
        DialRule(pattern=r"^\+1555003", sequence=["answering_machine"]),
    ]


@dataclass
class SimulatorConfig:
    """Everything the embedded simulator can be told; see ``config/simulator.toml``."""

    time_scale: float = 1.0
    ring_seconds: float = 8.0
    route_seconds: float = 1.0
    treatment_seconds: float = 10.0
    callin_valid_seconds: float = 600.0
    auto_callin_seconds: float = 0.0  # > 0: customers call in by themselves (unattended runs)
    default_handle_seconds: float = 180.0  # EWT's average handle time until a queue has history
    default_outcome: str = ANSWER
    access_number: str = "+18005550100"
    queues: dict[str, QueueConfig] = field(default_factory=_default_queues)
    dial_rules: list[DialRule] = field(default_factory=_default_rules)
    seed: int | None = None

    def validate(self) -> SimulatorConfig:
        _number(self.time_scale, "time_scale", strict=True)
        for name in ("ring_seconds", "route_seconds", "treatment_seconds", "auto_callin_seconds"):
            _number(getattr(self, name), name)
        _number(self.callin_valid_seconds, "callin_valid_seconds", strict=True)
        _number(self.default_handle_seconds, "default_handle_seconds", strict=True)
        _outcome(self.default_outcome, "default_outcome")
        if not isinstance(self.access_number, str) or not self.access_number.strip():
            raise ValueError("access_number: must be a non-empty string")
        if not isinstance(self.queues, dict):
            raise ValueError("queues: must be a table of queue name -> settings")
        for name, queue in self.queues.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"queues: invalid queue name {name!r}")
            if not isinstance(queue, QueueConfig):
                raise ValueError(f"queues.{name}: must be a queue table")
            queue.validate(f"queues.{name}.")
        if not isinstance(self.dial_rules, list):
            raise ValueError("dial_rules: must be a list of rules")
        for i, rule in enumerate(self.dial_rules):
            if not isinstance(rule, DialRule):
                raise ValueError(f"dial_rules[{i}]: must be a rule table")
            rule.validate(f"dial_rules[{i}].")
        if self.seed is not None:
            _integer(self.seed, "seed", minimum=-(2**63))
        return self

    @classmethod
    def from_dict(cls, data: Any) -> SimulatorConfig:
        """Build from a TOML table or a JSON object; missing settings take their defaults."""
        data = _table(data, "simulator")
        _known_keys(data, cls, "")
        kw: dict[str, Any] = {k: v for k, v in data.items() if k not in ("queues", "dial_rules")}
        if "queues" in data:
            queues = _table(data["queues"], "queues")
            kw["queues"] = {
                name: QueueConfig.from_dict(value, f"queues.{name}.") for name, value in queues.items()
            }
        if "dial_rules" in data:
            rules = data["dial_rules"]
            if not isinstance(rules, (list, tuple)):
                raise ValueError("dial_rules: must be a list of rules")
            kw["dial_rules"] = [DialRule.from_dict(r, f"dial_rules[{i}].") for i, r in enumerate(rules)]
        return cls(**kw).validate()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able and TOML-able (no None values); ``from_dict(to_dict())`` gives it back."""
        out: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("queues", "dial_rules", "seed")
        }
        out["queues"] = {name: q.to_dict() for name, q in self.queues.items()}
        out["dial_rules"] = [r.to_dict() for r in self.dial_rules]
        if self.seed is not None:
            out["seed"] = self.seed
        return out


def load_simulator_config(path: str | Path) -> SimulatorConfig:
    """Read ``config/simulator.toml`` (settings at top level or under ``[simulator]``).

    A missing file gives the embedded defaults; a malformed one raises ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        return SimulatorConfig()
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: {e}") from None
    if set(table) == {"simulator"}:
        table = table["simulator"]
    if "platform_key" in table:  # a secret is never in a settings file (the PUT rewrites this one)
        raise ValueError(f"{path}: platform_key is a secret; set CALLBACK_ENGINE_PLATFORM_KEY "
                         "(or CALLBACK_ENGINE_PLATFORM_KEY_FILE) instead")
    try:
        return SimulatorConfig.from_dict(table)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from None


def to_toml(config: SimulatorConfig) -> str:
    """The settings as a TOML document that ``load_simulator_config`` reads back unchanged."""
    data = config.to_dict()
    lines = ["# Written by PUT /admin/simulator; every setting is optional (see the shipped example).", ""]
    lines += [f"{key} = {_toml_value(value)}" for key, value in data.items()
              if key not in ("queues", "dial_rules")]
    for name, queue in data["queues"].items():
        lines += ["", f"[queues.{_toml_string(name)}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in queue.items()]
    for rule in data["dial_rules"]:
        lines += ["", "[[dial_rules]]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in rule.items()]
    return "\n".join(lines) + "\n"


def _toml_string(text: str) -> str:
    # A JSON string with ASCII escapes (\uXXXX, \n, \", \\) is a valid TOML basic string.
    return json.dumps(text, ensure_ascii=True)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # finite: validation refuses inf and nan
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"cannot write {value!r} as TOML")


def save_simulator_config(path: str | Path, config: SimulatorConfig) -> None:
    """Write ``config/simulator.toml`` durably; ``SaveError`` when not written (file unchanged)."""
    save(Path(path), to_toml(config).encode("utf-8"), "the simulator settings")
