"""Integration-test bed: a real etcd and kube-apiserver on loopback, or an external cluster.

See `tests.testbed.cluster` for what the bed starts and guarantees.
"""

from tests.testbed.cluster import (
    Binaries,
    ExternalCluster,
    TestbedError,
    TestbedUnavailable,
    TestCluster,
    locate_binaries,
    write_token_kubeconfig,
)

__all__ = [
    "Binaries",
    "ExternalCluster",
    "TestCluster",
    "TestbedError",
    "TestbedUnavailable",
    "locate_binaries",
    "write_token_kubeconfig",
]
