"""Command line: parse flags, validate settings, run the controller.

Exit codes: 0 after a clean shutdown, 2 for a configuration error (one line naming the
option and the expected form), 1 when the controller failed while running.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from logstream import __version__
from logstream.config import Settings

# Flags of the Go implementation keep their names and short forms.
_COMPATIBLE_FLAGS: dict[str, tuple[str, ...]] = {
    "coder_url": ("--coder-url", "-u"),
    "namespaces": ("--namespaces", "-n"),
    "field_selector": ("--field-selector", "-f"),
    "label_selector": ("--label-selector", "-l"),
    "kubeconfig": ("--kubeconfig", "-k"),
}
_HELP = {
    "coder_url": "Coder URL, http(s) scheme required",
    "namespaces": "comma-separated namespaces to watch; empty watches the whole cluster",
    "field_selector": "field selector for pods (never applied to other kinds)",
    "label_selector": "label selector for pods and ReplicaSets, StatefulSets and Jobs",
    "kubeconfig": "kubeconfig path, or several joined with ':'; in-cluster configuration is tried first",
    "metrics_addr": "host:port for /metrics, /healthz and /readyz; empty disables",
    "log_format": "format of the controller's own log: text or json",
    "log_level": "debug, info, warning or error",
    "dry_run": "print every line with its agent, level and time instead of sending it",
    "batch_window_seconds": "how long a sender waits to fill a batch",
    "batch_max_lines": "lines per request to Coder at most",
    "batch_max_bytes": "bytes of output per request to Coder at most",
    "queue_max_lines": "lines kept per agent; when full the oldest are dropped and one notice is added",
    "unauthorized_window_seconds": "how long lines for a token Coder rejects with 401 are kept and retried",
    "retry_max_seconds": "cap of the backoff after 5xx answers and connection errors",
    "request_timeout_seconds": "timeout of each request to Coder",
    "shutdown_timeout_seconds": "how long SIGTERM waits for the queues to flush",
    "watch_read_timeout_seconds": "a watch silent for longer is reopened as a dead connection",
    "list_page_size": "objects per page of a Kubernetes list",
    "leader_elect": "elect one sending replica on a Lease and keep a delivery checkpoint",
    "leader_election_lease_name": "name of the Lease; the checkpoint is the ConfigMap <name>-checkpoint",
    "leader_election_namespace": "namespace of the Lease and checkpoint; empty means POD_NAMESPACE or the pod's own",
    "leader_election_identity": "this replica's name in the Lease; empty means POD_NAME or the host name",
    "leader_election_lease_duration_seconds": "how long followers wait after the last Lease change before taking it",
    "leader_election_renew_deadline_seconds": "a leader that has not renewed for this long stops sending",
    "leader_election_retry_period_seconds": "how often the leader renews and followers look",
    "checkpoint_interval_seconds": "how often the leader writes the checkpoint and followers read it",
    "checkpoint_max_bytes": "size bound of the checkpoint; the oldest records are evicted beyond it",
    "checkpoint_retention_seconds": "how long records of deleted objects and quiet events are kept",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logstream-kube",
        description="Stream Kubernetes signals about Coder workspaces into their startup logs.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for name, field in Settings.model_fields.items():
        env = field.validation_alias
        flags = _COMPATIBLE_FLAGS.get(name, ("--" + name.replace("_", "-"),))
        help_text = _HELP.get(name, name.replace("_", " "))
        help_text += f" (env {env}, default {field.default!r})"
        if field.annotation is bool:
            parser.add_argument(*flags, dest=name, action="store_true", help=help_text)
        else:
            parser.add_argument(*flags, dest=name, metavar=name.upper(), help=help_text)
    return parser


def load_settings(argv: Sequence[str] | None) -> Settings:
    """Flags over environment over defaults; raises SystemExit(2) with one clear line."""
    given: dict[str, Any] = vars(build_parser().parse_args(argv))
    try:
        return Settings.from_flags(given)
    except ValidationError as exc:
        _fail(_explain(exc))
        raise  # unreachable: _fail exits


def _explain(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    if message.startswith("--"):
        return message
    where = str(error["loc"][0]) if error.get("loc") else ""
    name = next(
        (n for n, f in Settings.model_fields.items() if where in (n, f.validation_alias)), where
    )
    env = Settings.model_fields[name].validation_alias if name in Settings.model_fields else name
    flag = _COMPATIBLE_FLAGS.get(name, ("--" + name.replace("_", "-"),))[0]
    return f"{flag} (env {env}): {error.get('input')!r} is not valid: {message}"


def _fail(message: str) -> None:
    print(f"logstream-kube: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    settings = load_settings(argv)

    # Imported late so that `--help` and configuration errors stay fast.
    from logstream.app import ConfigurationProblem, freeze_startup_objects, run
    from logstream.ops.logs import setup_logging

    freeze_startup_objects()

    setup_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        return asyncio.run(run(settings))
    except ConfigurationProblem as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return 0
    return 1
