"""Simulator settings: defaults, the shipped file, round trips and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.platform import SimulatorConfig, load_simulator_config
from engine.platform.config import DialRule, QueueConfig

REPO = Path(__file__).resolve().parents[2]


def test_shipped_file_loads_with_the_example_queues_and_rules() -> None:
    conf = load_simulator_config(REPO / "config" / "simulator.toml")
    assert conf.queues["Callback_VQ"] == QueueConfig(agents=3, handle_seconds=180.0)
    assert "Support_VQ" in conf.queues
    assert conf.ring_seconds == 8.0
    assert [(r.pattern, r.sequence) for r in conf.dial_rules] == [
        (r"^\+1555000", ["busy"]), (r"^\+1555001", ["busy", "answer"]),
        (r"^\+1555002", ["no_answer"]), (r"^\+1555003", ["answering_machine"]),
    ]
    assert conf.default_outcome == "answer"
    assert conf == SimulatorConfig()  # the embedded defaults say the same as the file


def test_missing_file_gives_defaults_and_simulator_table_is_accepted(tmp_path: Path) -> None:
    assert load_simulator_config(tmp_path / "none.toml") == SimulatorConfig()
    path = tmp_path / "sim.toml"
    path.write_text('[simulator]\ntime_scale = 1000\n[simulator.queues.A]\nagents = 2\n')
    conf = load_simulator_config(path)
    assert conf.time_scale == 1000 and conf.queues == {"A": QueueConfig(agents=2)}


def test_round_trip_through_dict() -> None:
    conf = SimulatorConfig.from_dict({
        "time_scale": 250, "seed": 5, "queues": {"A": {"agents": 4, "handle_seconds": 30, "handle_jitter": 5}},
        "dial_rules": [{"pattern": "^1", "probabilities": {"answer": 1, "busy": 2}}],
    })
    assert conf.dial_rules == [DialRule(pattern="^1", probabilities={"answer": 1, "busy": 2})]
    assert SimulatorConfig.from_dict(conf.to_dict()) == conf
    assert "seed" not in SimulatorConfig().to_dict()  # no None values: TOML has no null


@pytest.mark.parametrize(("data", "message"), [
    ({"time_scale": 0}, "time_scale: must be > 0"),
    ({"time_scale": "fast"}, "time_scale: must be a number"),
    ({"ring_seconds": -1}, "ring_seconds: must be >= 0"),
    ({"callin_valid_seconds": 0}, "callin_valid_seconds: must be > 0"),
    ({"default_outcome": "hangup"}, "default_outcome: 'hangup' is not a dial outcome"),
    ({"access_number": ""}, "access_number: must be a non-empty string"),
    ({"queues": {"A": {"agents": -1}}}, "queues.A.agents: must be >= 0"),
    ({"queues": {"A": {"agents": 1.5}}}, "queues.A.agents: must be an integer"),
    ({"queues": {"A": {"agents": 1, "handle_seconds": 0}}}, "queues.A.handle_seconds: must be > 0"),
    ({"queues": {"A": {"handle_seconds": 10, "handle_jitter": 11}}}, "queues.A.handle_jitter: must not exceed"),
    ({"queues": {"A": {"agent": 1}}}, "queues.A.agent: unknown setting"),
    ({"queues": []}, "queues: must be a table"),
    ({"dial_rules": [{"sequence": ["busy"]}]}, r"dial_rules\[0\].pattern: missing"),
    ({"dial_rules": [{"pattern": "(", "sequence": ["busy"]}]}, r"dial_rules\[0\].pattern: invalid regular"),
    ({"dial_rules": [{"pattern": "1"}]}, "exactly one of 'sequence' or 'probabilities'"),
    ({"dial_rules": [{"pattern": "1", "sequence": []}]}, r"dial_rules\[0\].sequence: must be a non-empty list"),
    ({"dial_rules": [{"pattern": "1", "sequence": ["busy", "x"]}]}, r"dial_rules\[0\].sequence\[1\]"),
    ({"dial_rules": [{"pattern": "1", "probabilities": {"busy": -1}}]}, r"probabilities.busy: must be >= 0"),
    ({"dial_rules": [{"pattern": "1", "probabilities": {"busy": 0}}]}, "must not all be zero"),
    ({"dial_rules": [{"pattern": "1", "probabilities": {"hangup": 1}}]}, "is not a dial outcome"),
    ({"seed": "x"}, "seed: must be an integer"),
    ({"speed": 2}, "speed: unknown setting"),
])
def test_bad_settings_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorConfig.from_dict(data)


def test_bad_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text("time_scale = \n")
    with pytest.raises(ValueError, match=r"sim\.toml"):
        load_simulator_config(path)
    path.write_text("[queues.A]\nagents = -2\n")
    with pytest.raises(ValueError, match=r"sim\.toml: queues\.A\.agents: must be >= 0"):
        load_simulator_config(path)
