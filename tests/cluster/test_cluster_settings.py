"""The cluster settings (issue 14): defaults that change nothing for SQLite, a node name that
says which node it is, and values that cannot work refused at load."""

from __future__ import annotations

import socket

import pytest

from engine.settings import Settings

PG = "postgresql+asyncpg://engine@127.0.0.1:5432/cbe"


def load(tmp_path, **env: str) -> Settings:
    return Settings.load(config_dir=tmp_path, env={f"CALLBACK_ENGINE_{k.upper()}": v for k, v in env.items()})


def test_the_defaults_keep_sqlite_single_process(tmp_path) -> None:
    s = load(tmp_path)
    assert s.in_cluster is False  # the SQLite default is one process, whatever `cluster` says
    assert (s.cluster, s.cluster_lease_seconds, s.cluster_heartbeat_seconds) == (True, 10.0, 2.0)
    assert s.cluster_audit is False
    assert (s.public_url, s.internal_url, s.platform_url) == ("", "", "")


def test_postgresql_is_a_cluster_unless_switched_off(tmp_path) -> None:
    assert load(tmp_path, database_url=PG).in_cluster is True
    assert load(tmp_path, database_url=PG, cluster="false").in_cluster is False


def test_the_node_name_defaults_to_host_and_port(tmp_path) -> None:
    assert load(tmp_path, host="10.0.0.5", port="8081").node == "10.0.0.5:8081"
    assert load(tmp_path, host="0.0.0.0", port="8081").node == f"{socket.gethostname()}:8081"
    assert load(tmp_path, node_name="n1", port="8081").node == "n1"


def test_the_settings_file_and_environment_set_them(tmp_path) -> None:
    (tmp_path / "engine.toml").write_text(
        '[engine]\ncluster_lease_seconds = 3\ncluster_heartbeat_seconds = 0.5\ncluster_audit = true\n'
        'platform_url = "http://platform:8090"\n')
    s = load(tmp_path, internal_url="http://10.0.0.5:8081", public_url="https://callbacks.example.com/",
             platform_key="k" * 16)
    assert (s.cluster_lease_seconds, s.cluster_heartbeat_seconds, s.cluster_audit) == (3.0, 0.5, True)
    assert (s.platform_url, s.internal_url, s.public_url) == (
        "http://platform:8090", "http://10.0.0.5:8081", "https://callbacks.example.com/")


@pytest.mark.parametrize(("env", "message"), [
    ({"cluster_lease_seconds": "0"}, "cluster_lease_seconds must be positive"),
    ({"cluster_lease_seconds": "4", "cluster_heartbeat_seconds": "1.5"}, "at most a quarter"),
    ({"cluster_heartbeat_seconds": "0"}, "at most a quarter"),
    ({"platform_url": "platform:8090"}, "platform_url must be an http"),
    ({"internal_url": "ftp://10.0.0.5"}, "internal_url must be an http"),
    ({"public_url": "http://a b"}, "public_url must be an http"),
    ({"node_name": "node one"}, "node_name must be"),
])
def test_values_that_cannot_work_are_refused_at_load(tmp_path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load(tmp_path, **env)


def test_a_heartbeat_of_exactly_a_quarter_lease_is_allowed(tmp_path) -> None:
    assert load(tmp_path, cluster_lease_seconds="2", cluster_heartbeat_seconds="0.5").cluster_heartbeat_seconds == 0.5
