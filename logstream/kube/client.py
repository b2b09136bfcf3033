"""Connect to the API server: in-cluster config first, then the kubeconfig file.

Order: the pod's service account when running in a cluster; else the path given by
`--kubeconfig`/`KUBECONFIG` (`~` expanded); else the default `~/.kube/config`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

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


def check_kubeconfig(path: Path | None) -> None:
    """Fail early, before any task starts, when a named kubeconfig cannot be read."""
    if path is None or in_cluster():
        return
    try:
        path.read_bytes()
    except OSError as exc:
        raise KubeConfigError(
            f"--kubeconfig: cannot read {str(path)!r} ({exc.strerror}); "
            "pass a readable kubeconfig file with -k or KUBECONFIG"
        ) from exc


async def connect(kubeconfig: Path | None) -> ApiClient:
    """An authenticated client for whichever configuration works first."""
    configuration = Configuration()
    tried: list[str] = []

    if in_cluster():
        try:
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            log.info("using in-cluster configuration")
            return ApiClient(configuration)
        except ConfigException as exc:
            tried.append(f"in-cluster ({exc})")

    for path in _candidates(kubeconfig):
        try:
            await kube_config.load_kube_config(
                config_file=str(path), client_configuration=configuration
            )
        except (ConfigException, OSError, ValueError) as exc:
            tried.append(f"{path} ({exc})")
            continue
        log.info("using kubeconfig", extra=fields(path=str(path), server=configuration.host))
        return ApiClient(configuration)

    raise KubeConfigError(
        "no Kubernetes configuration works; tried: "
        + "; ".join(tried or ["nothing"])
        + ". Run inside a cluster, or pass a kubeconfig with -k or KUBECONFIG"
    )


def _candidates(kubeconfig: Path | None) -> list[Path]:
    if kubeconfig is not None:
        return [kubeconfig.expanduser()]
    default = DEFAULT_KUBECONFIG.expanduser()
    return [default] if default.exists() else []
