"""Leader-election settings: names the Helm chart uses, defaults, and clear refusals."""

from __future__ import annotations

import os

import pytest

import logstream.config
from logstream.cli import load_settings
from logstream.ha.replica import HaOptions

URL = ("-u", "http://127.0.0.1:3000")


@pytest.fixture(autouse=True)
def no_pod_environment(monkeypatch, tmp_path):
    for name in ("POD_NAME", "POD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("CODER_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(logstream.config, "SERVICE_ACCOUNT_NAMESPACE_FILE", tmp_path / "absent")


def test_off_by_default_with_client_go_timings():
    settings = load_settings(URL)

    assert not settings.leader_elect
    assert settings.leader_election_lease_name == "logstream-kube"
    assert (settings.leader_election_lease_duration_seconds, settings.leader_election_renew_deadline_seconds,
            settings.leader_election_retry_period_seconds) == (15, 10, 2)
    assert settings.checkpoint_interval_seconds == 2


def test_every_setting_has_its_exact_environment_variable(monkeypatch):
    env = {
        "CODER_LOGSTREAM_LEADER_ELECT": "true",
        "CODER_LOGSTREAM_LEADER_ELECTION_LEASE_NAME": "ls",
        "CODER_LOGSTREAM_LEADER_ELECTION_NAMESPACE": "coder",
        "CODER_LOGSTREAM_LEADER_ELECTION_IDENTITY": "replica-1",
        "CODER_LOGSTREAM_LEADER_ELECTION_LEASE_DURATION_SECONDS": "20",
        "CODER_LOGSTREAM_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": "12",
        "CODER_LOGSTREAM_LEADER_ELECTION_RETRY_PERIOD_SECONDS": "3",
        "CODER_LOGSTREAM_CHECKPOINT_INTERVAL_SECONDS": "5",
        "CODER_LOGSTREAM_CHECKPOINT_MAX_BYTES": "100000",
        "CODER_LOGSTREAM_CHECKPOINT_RETENTION_SECONDS": "9000",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    options = HaOptions.from_settings(load_settings(URL))

    assert (options.lease_name, options.namespace, options.identity) == ("ls", "coder", "replica-1")
    assert (options.timing.lease_duration_seconds, options.timing.renew_deadline_seconds,
            options.timing.retry_period_seconds) == (20, 12, 3)
    assert (options.checkpoint_interval_seconds, options.checkpoint_max_bytes,
            options.checkpoint_retention_seconds) == (5, 100000, 9000)
    assert options.checkpoint_name == "ls-checkpoint"


def test_flags_override_the_environment(monkeypatch):
    monkeypatch.setenv("CODER_LOGSTREAM_LEADER_ELECTION_IDENTITY", "from-env")
    settings = load_settings([*URL, "--leader-elect", "--leader-election-namespace", "coder",
                              "--leader-election-identity", "from-flag"])

    assert settings.leader_election_identity == "from-flag"


def test_namespace_and_identity_come_from_the_pod(monkeypatch):
    monkeypatch.setenv("POD_NAMESPACE", "coder")
    monkeypatch.setenv("POD_NAME", "logstream-kube-7d9f-abcde")
    settings = load_settings([*URL, "--leader-elect"])

    assert settings.leader_election_namespace == "coder"
    assert settings.leader_election_identity == "logstream-kube-7d9f-abcde"


def test_the_namespace_falls_back_to_the_service_account_file(monkeypatch, tmp_path):
    path = tmp_path / "namespace"
    path.write_text("coder-system\n")
    monkeypatch.setattr(logstream.config, "SERVICE_ACCOUNT_NAMESPACE_FILE", path)
    settings = load_settings([*URL, "--leader-elect"])

    assert settings.leader_election_namespace == "coder-system"


def test_without_a_pod_name_the_identity_is_the_host_name_with_a_random_suffix():
    args = [*URL, "--leader-elect", "--leader-election-namespace", "coder"]
    first, second = load_settings(args), load_settings(args)

    assert first.leader_election_identity != second.leader_election_identity
    assert first.leader_election_identity.rsplit("-", 1)[0] == second.leader_election_identity.rsplit("-", 1)[0]


@pytest.mark.parametrize(
    ("args", "option", "hint"),
    [
        (["--leader-elect"], "--leader-election-namespace", "POD_NAMESPACE"),
        (["--leader-elect", "--leader-election-namespace", "c", "--leader-election-renew-deadline-seconds", "15"],
         "--leader-election-renew-deadline-seconds", "lease duration 15"),
        (["--leader-elect", "--leader-election-namespace", "c", "--leader-election-retry-period-seconds", "10"],
         "--leader-election-retry-period-seconds", "renew deadline 10"),
        (["--leader-elect", "--leader-election-namespace", "c", "--dry-run"], "--leader-elect", "--dry-run"),
        (["--leader-election-lease-duration-seconds", "0"], "--leader-election-lease-duration-seconds", "0"),
        (["--checkpoint-max-bytes", "2000000"], "--checkpoint-max-bytes", "2000000"),
    ],
)
def test_bad_values_exit_2_naming_the_option(args, option, hint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_settings([*URL, *args])

    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1
    assert option in message
    assert hint in message
