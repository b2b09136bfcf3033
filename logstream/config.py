"""Configuration: command-line flags over environment variables over defaults.

Flag and variable names of the Go implementation keep their meaning (see the table in
docs/configuration.md). Everything is validated here, before any task starts, so a bad
value ends the process with exit code 2 and one line naming the option and the expected
form.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# One requirement of a label selector: `key`, `!key`, `key=v`, `key==v`, `key!=v`,
# `key in (a,b)`, `key notin (a,b)`. Keys may carry a DNS prefix (`example.com/name`).
_KEY = r"(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_LABEL_REQUIREMENT = re.compile(
    rf"^\s*(?:!\s*{_KEY}|{_KEY}\s*(?:(?:==?|!=)\s*{_VALUE}"
    rf"|\s+(?:in|notin)\s*\(\s*{_VALUE}(?:\s*,\s*{_VALUE})*\s*\))?)\s*$"
)
# File with the pod's own namespace: the default lease namespace when POD_NAMESPACE is unset.
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# One requirement of a field selector: `path=v`, `path==v` or `path!=v`.
_FIELD_REQUIREMENT = re.compile(r"^\s*[A-Za-z][A-Za-z0-9_.]*\s*(?:==?|!=)\s*[^,=!]*\s*$")


class ConfigError(ValueError):
    """A setting has a value the controller cannot use. The message names the option."""


# A namespace name is an RFC 1123 label.
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _split_top_level(selector: str) -> list[str]:
    """Split a selector on commas that are not inside `in (...)` lists."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(selector):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(selector[start:i])
            start = i + 1
    parts.append(selector[start:])
    return parts


def _check_selector(value: str, pattern: re.Pattern[str], option: str, example: str) -> str:
    if not value.strip():
        return ""
    for part in _split_top_level(value):
        if not pattern.match(part):
            raise ValueError(
                f"{option}: {part.strip()!r} in {value!r} is not a valid requirement; "
                f"expected a comma-separated list such as {example!r}"
            )
    return value.strip()


class Settings(BaseSettings):
    """Every setting, with the environment variable that sets it when no flag does."""

    # Exact, case-sensitive variable names: a stray LOG_LEVEL or NAMESPACES in a container's
    # environment must not change the controller.
    # Values from flags are passed under the same names (see `from_flags`), so a field's
    # own name, such as `namespaces`, is never read from the environment.
    model_config = SettingsConfigDict(extra="forbid", case_sensitive=True)

    coder_url: str = Field("", validation_alias="CODER_URL")
    namespaces: str = Field("", validation_alias="CODER_NAMESPACES")
    field_selector: str = Field(
        "", validation_alias="CODER_FIELD_SELECTOR"
    )
    label_selector: str = Field(
        "", validation_alias="CODER_LABEL_SELECTOR"
    )
    kubeconfig: str = Field("", validation_alias="KUBECONFIG")
    metrics_addr: str = Field(
        "", validation_alias="CODER_LOGSTREAM_METRICS_ADDR"
    )

    log_format: Literal["text", "json"] = Field(
        "text", validation_alias="CODER_LOGSTREAM_LOG_FORMAT"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", validation_alias="CODER_LOGSTREAM_LOG_LEVEL"
    )
    dry_run: bool = Field(False, validation_alias="CODER_LOGSTREAM_DRY_RUN")

    # Delivery tuning. Coder accepts up to 1 MiB per request; stay far below it.
    batch_window_seconds: float = Field(
        0.1, gt=0, le=10,
        validation_alias="CODER_LOGSTREAM_BATCH_WINDOW_SECONDS",
    )
    batch_max_lines: int = Field(
        100, ge=1, le=1000,
        validation_alias="CODER_LOGSTREAM_BATCH_MAX_LINES",
    )
    batch_max_bytes: int = Field(
        256 * 1024, ge=2048, le=512 * 1024,
        validation_alias="CODER_LOGSTREAM_BATCH_MAX_BYTES",
    )
    queue_max_lines: int = Field(
        5000, ge=10,
        validation_alias="CODER_LOGSTREAM_QUEUE_MAX_LINES",
    )
    unauthorized_window_seconds: float = Field(
        300, ge=0,
        validation_alias="CODER_LOGSTREAM_UNAUTHORIZED_WINDOW_SECONDS",
    )
    retry_max_seconds: float = Field(
        30, gt=0,
        validation_alias="CODER_LOGSTREAM_RETRY_MAX_SECONDS",
    )
    request_timeout_seconds: float = Field(
        10, gt=0,
        validation_alias="CODER_LOGSTREAM_REQUEST_TIMEOUT_SECONDS",
    )
    shutdown_timeout_seconds: float = Field(
        10, ge=0,
        validation_alias="CODER_LOGSTREAM_SHUTDOWN_TIMEOUT_SECONDS",
    )

    # Kubernetes watch tuning.
    watch_read_timeout_seconds: float = Field(
        90, gt=0,
        validation_alias="CODER_LOGSTREAM_WATCH_READ_TIMEOUT_SECONDS",
    )
    list_page_size: int = Field(
        500, ge=1,
        validation_alias="CODER_LOGSTREAM_LIST_PAGE_SIZE",
    )

    # Leader election and the delivery checkpoint (docs/ha.md). Off by default: one
    # replica without a Lease behaves like the Go implementation.
    leader_elect: bool = Field(False, validation_alias="CODER_LOGSTREAM_LEADER_ELECT")
    leader_election_lease_name: str = Field(
        "logstream-kube", min_length=1,
        validation_alias="CODER_LOGSTREAM_LEADER_ELECTION_LEASE_NAME",
    )
    leader_election_namespace: str = Field(
        "", validation_alias="CODER_LOGSTREAM_LEADER_ELECTION_NAMESPACE"
    )
    leader_election_identity: str = Field(
        "", validation_alias="CODER_LOGSTREAM_LEADER_ELECTION_IDENTITY"
    )
    leader_election_lease_duration_seconds: int = Field(
        15, ge=1, le=3600,
        validation_alias="CODER_LOGSTREAM_LEADER_ELECTION_LEASE_DURATION_SECONDS",
    )
    leader_election_renew_deadline_seconds: float = Field(
        10, gt=0,
        validation_alias="CODER_LOGSTREAM_LEADER_ELECTION_RENEW_DEADLINE_SECONDS",
    )
    leader_election_retry_period_seconds: float = Field(
        2, gt=0,
        validation_alias="CODER_LOGSTREAM_LEADER_ELECTION_RETRY_PERIOD_SECONDS",
    )
    checkpoint_interval_seconds: float = Field(
        2, gt=0, le=300,
        validation_alias="CODER_LOGSTREAM_CHECKPOINT_INTERVAL_SECONDS",
    )
    # A ConfigMap stores at most 1 MiB. The checkpoint evicts its oldest entries to stay
    # under this size.
    checkpoint_max_bytes: int = Field(
        256 * 1024, ge=4096, le=768 * 1024,
        validation_alias="CODER_LOGSTREAM_CHECKPOINT_MAX_BYTES",
    )
    # How long the record of an event (since its last delivered line) and of a deleted
    # object is kept. Must exceed the API server's --event-ttl (1 h by default).
    checkpoint_retention_seconds: float = Field(
        7200, gt=0,
        validation_alias="CODER_LOGSTREAM_CHECKPOINT_RETENTION_SECONDS",
    )

    @field_validator("coder_url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"--coder-url: {value!r} is not an http(s) URL; "
                "expected a form such as 'https://coder.example.com'"
            )
        return value.rstrip("/")

    @field_validator("namespaces")
    @classmethod
    def _namespaces_are_names(cls, value: str) -> str:
        for name in (part.strip() for part in value.split(",")):
            if name and not _NAMESPACE_NAME.fullmatch(name):
                raise ValueError(
                    f"--namespaces: {name!r} is not a namespace name (lowercase letters, "
                    "digits and '-', at most 63); expected a comma-separated list such as 'coder,team-1'"
                )
        return value

    @field_validator("label_selector")
    @classmethod
    def _label_selector_parses(cls, value: str) -> str:
        return _check_selector(
            value, _LABEL_REQUIREMENT, "--label-selector", "app=ws,tier in (dev,test)"
        )

    @field_validator("field_selector")
    @classmethod
    def _field_selector_parses(cls, value: str) -> str:
        return _check_selector(
            value, _FIELD_REQUIREMENT, "--field-selector", "status.phase!=Succeeded"
        )

    @field_validator("metrics_addr")
    @classmethod
    def _metrics_addr_has_port(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]*):\d{1,5}", value):
            raise ValueError(
                f"--metrics-addr: {value!r} is not an address; expected 'host:port' or ':port'"
            )
        return value

    @model_validator(mode="after")
    def _url_required_unless_dry_run(self) -> Settings:
        if not self.coder_url and not self.dry_run:
            raise ValueError(
                "--coder-url: not set; pass -u https://coder.example.com or set CODER_URL "
                "(or use --dry-run to print lines instead of sending them)"
            )
        return self

    @classmethod
    def from_flags(cls, flags: dict[str, Any]) -> Settings:
        """Settings with `flags` (keyed by field name) over the environment."""
        by_alias: dict[str, Any] = {str(cls.model_fields[name].validation_alias): value for name, value in flags.items()}
        return cls(**by_alias)

    @model_validator(mode="after")
    def _leader_election_is_consistent(self) -> Settings:
        if not self.leader_elect:
            return self
        if self.dry_run:
            raise ValueError(
                "--leader-elect: cannot be combined with --dry-run; a dry run prints every "
                "line itself and has nothing to hand over"
            )
        lease = self.leader_election_lease_duration_seconds
        renew = self.leader_election_renew_deadline_seconds
        retry = self.leader_election_retry_period_seconds
        if not renew < lease:
            raise ValueError(
                f"--leader-election-renew-deadline-seconds: {renew:g} is not below the lease "
                f"duration {lease}; a leader must stop sending before its lease can be taken "
                "over (for example 10 and 15)"
            )
        if not retry < renew:
            raise ValueError(
                f"--leader-election-retry-period-seconds: {retry:g} is not below the renew "
                f"deadline {renew:g}; a leader needs several tries per deadline (for example 2 and 10)"
            )
        if not self.leader_election_namespace.strip():
            self.leader_election_namespace = _own_namespace()
        if not self.leader_election_identity.strip():
            self.leader_election_identity = _own_identity()
        return self

    @property
    def namespace_list(self) -> list[str]:
        """Namespaces to watch; an empty list means the whole cluster."""
        return [ns.strip() for ns in self.namespaces.split(",") if ns.strip()]

    @property
    def kubeconfig_paths(self) -> list[Path]:
        """The kubeconfig files named, in order, with `~` expanded; empty when none is.

        Like kubectl, `KUBECONFIG` may list several files separated by `os.pathsep`.
        """
        return [
            Path(entry.strip()).expanduser()
            for entry in self.kubeconfig.split(os.pathsep)
            if entry.strip()
        ]

    @property
    def metrics_host_port(self) -> tuple[str, int] | None:
        """Where to serve /metrics, /healthz and /readyz; None disables the server."""
        if not self.metrics_addr:
            return None
        host, _, port = self.metrics_addr.rpartition(":")
        return (host.strip("[]") or "0.0.0.0", int(port))


def _own_namespace() -> str:
    """Return the namespace of the controller's own pod: POD_NAMESPACE, else the service account's."""
    from_env = os.environ.get("POD_NAMESPACE", "").strip()
    if from_env:
        return from_env
    try:
        from_file = SERVICE_ACCOUNT_NAMESPACE_FILE.read_text().strip()
    except OSError:
        from_file = ""
    if from_file:
        return from_file
    raise ValueError(
        "--leader-election-namespace: not set, POD_NAMESPACE is not set and "
        f"{str(SERVICE_ACCOUNT_NAMESPACE_FILE)!r} cannot be read; pass the namespace that "
        "holds the Lease (for example --leader-election-namespace coder)"
    )


def _own_identity() -> str:
    """Return POD_NAME when set (unique per replica), else the host name with a random suffix."""
    from_env = os.environ.get("POD_NAME", "").strip()
    if from_env:
        return from_env
    return f"{socket.gethostname()}-{secrets.token_hex(3)}"
