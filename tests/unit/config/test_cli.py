"""Flags, environment and validation: bad input ends with exit code 2 and one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from logstream.cli import load_settings


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run(
        [sys.executable, "-m", "logstream", *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "option", "hint"),
    [
        ((), "--coder-url", "CODER_URL"),
        (("-u", "coder.example.com"), "--coder-url", "https://coder.example.com"),
        (("-u", "ftp://coder.example.com"), "--coder-url", "http(s)"),
        (("--dry-run", "-l", "app in (a,b"), "--label-selector", "app=ws"),
        (("--dry-run", "-f", "status.phase"), "--field-selector", "status.phase!=Succeeded"),
        (("--dry-run", "--log-format", "yaml"), "--log-format", "'text' or 'json'"),
        (("--dry-run", "--metrics-addr", "9090"), "--metrics-addr", "host:port"),
        (("--dry-run", "-k", "/nonexistent/kubeconfig"), "--kubeconfig", "/nonexistent/kubeconfig"),
    ],
)
def test_bad_input_exits_2_naming_the_option(args, option, hint):
    result = run_cli(*args)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert option in lines[0]
    assert hint in lines[0]


def test_no_kubeconfig_anywhere_is_a_clear_error():
    result = run_cli("--dry-run")

    assert result.returncode == 2
    assert "no Kubernetes configuration works" in result.stderr
    assert "KUBECONFIG" in result.stderr


def test_flags_win_over_environment(monkeypatch):
    monkeypatch.setenv("CODER_URL", "https://env.example.com")
    monkeypatch.setenv("CODER_NAMESPACES", "a, b ,")

    settings = load_settings(["-u", "https://flag.example.com/"])

    assert settings.coder_url == "https://flag.example.com"
    assert settings.namespace_list == ["a", "b"]


def test_unprefixed_lookalike_variables_are_ignored(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("namespaces", "x")

    settings = load_settings(["--dry-run"])

    assert settings.log_level == "info"
    assert settings.namespace_list == []


def test_selectors_accept_the_kubernetes_grammar():
    settings = load_settings(
        ["--dry-run", "-l", "app=ws,tier in (dev, test),!legacy,example.com/team!=ops", "-f", "status.phase!=Failed,spec.nodeName=node-a"]
    )

    assert settings.label_selector.startswith("app=ws")
    assert settings.field_selector.endswith("node-a")


def test_kubeconfig_path_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))

    settings = load_settings(["--dry-run", "-k", "~/kube/config"])

    assert settings.kubeconfig_path == tmp_path / "kube" / "config"


def test_help_lists_every_compatible_flag():
    result = run_cli("--help")

    for flag in ("--coder-url", "-u", "--namespaces", "-n", "--field-selector", "-f", "--label-selector", "-l",
                 "--kubeconfig", "-k", "--metrics-addr", "--log-format", "--log-level", "--dry-run"):
        assert f"{flag} " in result.stdout or f"{flag}," in result.stdout
