"""Checks that the integration test bed behaves like a real Kubernetes API server.

Covered: the pinned version in `/version`, object creation by the admin user, RBAC
denial for the limited user, 410 Gone for watches from expired resourceVersions, data
surviving an API-server restart, the kubeconfig files, and startup-failure reporting.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
from typing import Any

import httpx
import pytest

from tests.testbed import ExternalCluster, TestbedError, TestCluster
from tests.testbed.cluster import BUILD_SCRIPT

# Seconds the API server keeps a test watch open when no event arrives.
WATCH_SECONDS = 5


def pinned_kubernetes_versions() -> list[str]:
    """Return the kube-apiserver versions that scripts/testbed.sh may build."""
    match = re.search(r"^K8S_CANDIDATES=\(([^)]*)\)", BUILD_SCRIPT.read_text(), re.MULTILINE)
    assert match, f"K8S_CANDIDATES not found in {BUILD_SCRIPT}"
    return match.group(1).split()


def require_local(cluster: TestCluster | ExternalCluster) -> TestCluster:
    if not isinstance(cluster, TestCluster):
        pytest.skip("needs the local test bed, not an external cluster")
    return cluster


def load_kubeconfig(path: Any) -> dict[str, Any]:
    with open(path) as file:
        return json.load(file)


def client_from_token_kubeconfig(path: Any) -> httpx.Client:
    """Build an httpx client from a kubeconfig with one cluster and a token user."""
    config = load_kubeconfig(path)
    cluster = config["clusters"][0]["cluster"]
    ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
    context = ssl.create_default_context(cadata=ca_pem)
    token = config["users"][0]["user"]["token"]
    return httpx.Client(
        base_url=cluster["server"],
        verify=context,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    )


def configmap(name: str, data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {}}


def first_watch_frame(client: httpx.Client, path: str, resource_version: str) -> tuple[int, dict[str, Any] | None]:
    """Open a watch and return (HTTP status, first decoded frame or None)."""
    params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": str(WATCH_SECONDS)}
    with client.stream("GET", path, params=params, timeout=WATCH_SECONDS + 10) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, response.json()
        for line in response.iter_lines():
            if line.strip():
                return response.status_code, json.loads(line)
    return response.status_code, None


def assert_expired(status: int, frame: dict[str, Any] | None) -> None:
    """Assert a 410 Gone response: HTTP 410, or HTTP 200 with an ERROR frame of code 410."""
    if status == 410:
        return
    assert status == 200, f"unexpected HTTP status {status}: {frame}"
    assert frame is not None, "the watch ended without a frame"
    assert frame["type"] == "ERROR", f"expected an ERROR frame, got {frame}"
    assert frame["object"]["code"] == 410, f"expected code 410, got {frame['object']}"
    assert frame["object"]["reason"] == "Expired"


def test_version_reports_pinned_release(cluster, kube_admin):
    local = require_local(cluster)
    info = kube_admin.get("/version")

    assert info["gitVersion"] in pinned_kubernetes_versions()
    assert info["gitVersion"] == local.kube_version
    assert info["major"] == "1"
    assert info["minor"] == info["gitVersion"].split(".")[1]


def test_admin_creates_namespace_and_pod(cluster, kube_admin, namespace):
    assert kube_admin.get(f"/api/v1/namespaces/{namespace}")["status"]["phase"] == "Active"

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "dev"},
        "spec": {"containers": [{"name": "dev", "image": "registry.invalid/dev:1"}]},
    }
    created = kube_admin.create(f"/api/v1/namespaces/{namespace}/pods", pod)
    fetched = kube_admin.get(f"/api/v1/namespaces/{namespace}/pods/dev")

    assert fetched["metadata"]["uid"] == created["metadata"]["uid"]
    if isinstance(cluster, TestCluster):
        # No scheduler or kubelet: the pod stays Pending on no node.
        assert fetched["status"]["phase"] == "Pending"
        assert "nodeName" not in fetched["spec"]


def test_admin_patch_and_delete(kube_admin, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube_admin.create(path, configmap("settings", {"a": "1"}))

    patched = kube_admin.patch(f"{path}/settings", {"data": {"b": "2"}})
    assert patched["data"] == {"a": "1", "b": "2"}

    kube_admin.delete(f"{path}/settings")
    with pytest.raises(httpx.HTTPStatusError, match="HTTP 404"):
        kube_admin.get(f"{path}/settings")


def test_admin_kubeconfig_authenticates(cluster):
    local = require_local(cluster)
    with client_from_token_kubeconfig(local.admin_kubeconfig) as client:
        response = client.get("/api/v1/namespaces")

    assert response.status_code == 200
    assert response.json()["kind"] == "NamespaceList"


def test_limited_user_cannot_read_secrets(cluster, namespace):
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    with client_from_token_kubeconfig(cluster.limited_kubeconfig) as client:
        whoami = client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json=review)
        secrets = client.get(f"/api/v1/namespaces/{namespace}/secrets")

    # The token authenticates (so the 403 below is RBAC, not a bad credential).
    assert whoami.status_code == 201
    username = whoami.json()["status"]["userInfo"]["username"]
    assert username.endswith("limited")
    assert secrets.status_code == 403
    assert secrets.json()["reason"] == "Forbidden"


def test_compacted_watch_returns_410(cluster, kube_admin, namespace):
    # The watch cache keeps recent events in memory and would replay them without
    # asking etcd, so compaction alone gives 410 only with the cache off.
    cluster.restart_apiserver(["--watch-cache=false"])
    try:
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        old_version = kube_admin.create(path, configmap("first"))["metadata"]["resourceVersion"]
        # Two later writes: a watch from V starts at revision V + 1, which must be
        # below the compaction revision to be gone.
        kube_admin.create(path, configmap("second"))
        kube_admin.create(path, configmap("third"))
        revision = cluster.compact_etcd()

        status, frame = first_watch_frame(kube_admin.client, path, old_version)
    finally:
        cluster.restart_apiserver()

    assert revision > int(old_version) + 1
    assert_expired(status, frame)


def test_watch_cache_expires_version_before_restart(cluster, kube_admin, namespace):
    # With the watch cache on, a resourceVersion older than the cache's start (the
    # last API-server start) gets 410 although etcd still has the history.
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    old_version = kube_admin.create(path, configmap("first"))["metadata"]["resourceVersion"]
    kube_admin.create(path, configmap("second"))
    cluster.restart_apiserver()

    status, frame = first_watch_frame(kube_admin.client, path, old_version)

    assert_expired(status, frame)


def test_restart_keeps_data(cluster, kube_admin, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    created = kube_admin.create(path, configmap("kept", {"key": "value"}))
    server_url = cluster.server_url

    cluster.restart_apiserver()

    assert cluster.is_ready()
    assert cluster.server_url == server_url
    fetched = kube_admin.get(f"{path}/kept")
    assert fetched["metadata"]["uid"] == created["metadata"]["uid"]
    assert fetched["data"] == {"key": "value"}


def test_external_cluster_reads_kubeconfig(cluster):
    local = require_local(cluster)
    external = ExternalCluster(local.admin_kubeconfig)
    external.start()
    try:
        assert external.server_url == local.server_url
        assert external.kube_version == local.kube_version
        with client_from_token_kubeconfig(external.limited_kubeconfig) as client:
            secrets = client.get("/api/v1/namespaces/default/secrets")
        assert secrets.status_code == 403
        with pytest.raises(pytest.skip.Exception):
            external.compact_etcd()
    finally:
        external.stop()
    assert external.workdir is None


def test_startup_failure_reports_log_tail(cluster):
    local = require_local(cluster)
    broken = TestCluster(local.binaries, apiserver_args=["--no-such-flag"], start_timeout=30)

    with pytest.raises(TestbedError, match="unknown flag: --no-such-flag"):
        broken.start()

    assert broken.workdir is None
    broken.stop()  # a second stop is a no-op
