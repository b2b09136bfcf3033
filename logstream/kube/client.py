"""Connect to the API server: in-cluster config first, then the kubeconfig file.

Order: the pod's service account when running in a cluster; else the path given by
`--kubeconfig`/`KUBECONFIG` (`~` expanded); else the default `~/.kube/config`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import yaml

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config.config_exception import ConfigException

from logstream.ops.logs import fields

log = logging.getLogger("logstream.kube")

DEFAULT_KUBECONFIG = Path("~/.kube/config")


class KubeConfigError(Exception):
    """No way to reach the API server was found; the message says what was tried."""


def in_cluster() -> bool:
    """True when the service-account environment of a pod is present."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def readable_kubeconfigs(paths: Sequence[Path]) -> list[Path]:
    """Return the named kubeconfig files that can be read, as kubectl skips missing ones.

    Raises `KubeConfigError` when files were named and none of them can be read.
    """
    if not paths or in_cluster():
        return list(paths)

    readable: list[Path] = []
    problems: list[str] = []
    for path in paths:
        try:
            path.read_bytes()
        except OSError as exc:
            problems.append(f"{str(path)!r} ({exc.strerror})")
            continue
        readable.append(path)
    if not readable:
        raise KubeConfigError(
            f"--kubeconfig: cannot read {', '.join(problems)}; "
            "pass a readable kubeconfig file with -k or KUBECONFIG"
        )
    return readable


async def connect(kubeconfig: Path | Sequence[Path] | None) -> ApiClient:
    """Return an authenticated client for whichever configuration works first.

    Several kubeconfig files are merged by kubernetes_asyncio: a cluster, context or
    user named in more than one file comes from the first.

    NOTE: `current-context` comes from the last file that sets it, while kubectl takes
    it from the first.
    """
    configuration = Configuration()
    tried: list[str] = []

    if in_cluster():
        try:
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            log.info("using in-cluster configuration")
            return ApiClient(configuration)
        except ConfigException as exc:
            tried.append(f"in-cluster ({exc})")

    paths = _candidates(kubeconfig)
    if not paths:
        tried.append(f"{DEFAULT_KUBECONFIG} (not found)")
    else:
        joined = os.pathsep.join(str(path) for path in paths)
        try:
            await kube_config.load_kube_config(config_file=joined, client_configuration=configuration)
        except (ConfigException, OSError, ValueError, TypeError, AttributeError, yaml.YAMLError) as exc:
            # A file that is not a kubeconfig surfaces as whatever its parser hit first.
            problem = f"{joined} is not a usable kubeconfig ({_one_line(exc)})"
            if kubeconfig and not tried:
                raise KubeConfigError(
                    f"--kubeconfig: {problem}; pass a valid kubeconfig file with -k or KUBECONFIG"
                ) from exc
            tried.append(problem)
        else:
            log.info("using kubeconfig", extra=fields(path=joined, server=configuration.host))
            return ApiClient(configuration)

    raise KubeConfigError(
        "no Kubernetes configuration works; tried: "
        + "; ".join(tried)
        + ". Run inside a cluster, or pass a valid kubeconfig with -k or KUBECONFIG"
    )


def _candidates(kubeconfig: Path | Sequence[Path] | None) -> list[Path]:
    if isinstance(kubeconfig, Path):
        return [kubeconfig.expanduser()]
    if kubeconfig:
        return [path.expanduser() for path in kubeconfig]
    default = DEFAULT_KUBECONFIG.expanduser()
    return [default] if default.exists() else []


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
