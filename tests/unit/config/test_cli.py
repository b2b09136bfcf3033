"""Flags, environment and validation: bad input ends with exit code 2 and one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from logstream.cli import load_settings
from logstream.config import Settings


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
        (("--dry-run", "-n", "coder,Bad_NS!"), "--namespaces", "'Bad_NS!'"),
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
    assert "~/.kube/config (not found)" in result.stderr
    assert "KUBECONFIG" in result.stderr


@pytest.mark.parametrize("content", ["garbage: [\n", "- a list\n", "42\n"])
def test_malformed_kubeconfig_exits_2_naming_the_file(tmp_path, content):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(content)

    result = run_cli("--dry-run", "-k", str(kubeconfig))

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("logstream-kube: error: --kubeconfig: ")
    assert f"{kubeconfig} is not a usable kubeconfig" in lines[0]


def test_kubeconfig_list_skips_missing_files(tmp_path):
    broken = tmp_path / "broken"
    broken.write_text("garbage: [\n")
    missing = tmp_path / "missing"

    result = run_cli("--dry-run", env={"KUBECONFIG": f"{missing}:{broken}"})

    # The missing file is skipped, as kubectl does; the readable one is then parsed.
    assert result.returncode == 2
    assert f"{broken} is not a usable kubeconfig" in result.stderr
    assert str(missing) not in result.stderr


def test_no_file_of_a_kubeconfig_list_readable_names_each(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"

    result = run_cli("--dry-run", env={"KUBECONFIG": f"{first}:{second}"})

    assert result.returncode == 2
    assert str(first) in result.stderr
    assert str(second) in result.stderr


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

    assert settings.kubeconfig_paths == [tmp_path / "kube" / "config"]


def test_help_lists_every_compatible_flag():
    result = run_cli("--help")

    for flag in ("--coder-url", "-u", "--namespaces", "-n", "--field-selector", "-f", "--label-selector", "-l",
                 "--kubeconfig", "-k", "--metrics-addr", "--log-format", "--log-level", "--dry-run"):
        assert f"{flag} " in result.stdout or f"{flag}," in result.stdout


def test_help_explains_every_setting():
    result = run_cli("--help")

    # argparse wraps help text, so compare with whitespace collapsed.
    text = " ".join(result.stdout.split())
    for name in Settings.model_fields:
        assert f"{name.replace('_', ' ')} (env" not in text, f"--{name} has no help text of its own"
