"""Fixtures for integration tests against a real Kubernetes API server.

`cluster` (session scope) is a started `TestCluster` (etcd plus kube-apiserver on
127.0.0.1), or, when `LOGSTREAM_USE_KUBECONFIG=1` and `KUBECONFIG` is set, an
`ExternalCluster` for that kubeconfig (for example kind). When neither is possible
the tests are skipped, except under CI (`CI` set), where the fixture fails instead.

`kube_admin` sends admin requests with httpx, and `namespace` gives each test a new
namespace. Neither depends on the product package.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.testbed import ExternalCluster, TestbedUnavailable, TestCluster, locate_binaries
from tests.integration.fixtures import fake_coder, objects, start_controller  # noqa: F401 - fixtures

# Seconds for one admin request; a watch opened through `kube_admin.client.stream`
# needs its own timeout.
ADMIN_REQUEST_TIMEOUT = 30.0


def _external_kubeconfig() -> str | None:
    """Return the first path of KUBECONFIG when LOGSTREAM_USE_KUBECONFIG is 1, else None."""
    if os.environ.get("LOGSTREAM_USE_KUBECONFIG") != "1":
        return None
    value = os.environ.get("KUBECONFIG", "")
    paths = [p for p in value.split(os.pathsep) if p]
    # NOTE: only the first file of a KUBECONFIG list is read, while kubectl merges them all.
    return paths[0] if paths else None


@pytest.fixture(scope="session")
def cluster() -> Iterator[TestCluster | ExternalCluster]:
    """Start the control plane once per session and stop it at the end, also on failure."""
    kubeconfig = _external_kubeconfig()
    if kubeconfig:
        bed: TestCluster | ExternalCluster = ExternalCluster(kubeconfig)
    else:
        try:
            bed = TestCluster(locate_binaries())
        except TestbedUnavailable as exc:
            reason = (
                f"test-bed binaries unavailable and no kubeconfig given "
                f"(set LOGSTREAM_USE_KUBECONFIG=1 and KUBECONFIG to use a cluster): {exc}"
            )
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
    bed.start()
    try:
        yield bed
    finally:
        bed.stop()


class KubeAdmin:
    """Admin-credential HTTP calls to the API server; each method returns the decoded JSON.

    A response with status >= 400 raises `httpx.HTTPStatusError` whose message
    contains the API server's Status message. `client` is the underlying
    `httpx.Client`, for requests that need the raw response, such as watches.
    """

    def __init__(self, bed: TestCluster | ExternalCluster) -> None:
        self.client = httpx.Client(
            base_url=bed.server_url,
            verify=bed.admin_ssl_context(),
            headers=bed.admin_headers(),
            timeout=ADMIN_REQUEST_TIMEOUT,
        )

    def close(self) -> None:
        self.client.close()

    def get(self, path: str) -> Any:
        return self._checked(self.client.get(path))

    def create(self, path: str, body: dict[str, Any]) -> Any:
        return self._checked(self.client.post(path, json=body))

    def patch(
        self, path: str, body: dict[str, Any] | list[Any], content_type: str = "application/merge-patch+json"
    ) -> Any:
        # The API server picks the patch type from Content-Type, so json= (which sends
        # application/json) cannot be used here.
        response = self.client.patch(path, content=json.dumps(body).encode(), headers={"Content-Type": content_type})
        return self._checked(response)

    def delete(self, path: str) -> Any:
        return self._checked(self.client.delete(path))

    @staticmethod
    def _checked(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("message", response.text)
            except ValueError:
                detail = response.text
            raise httpx.HTTPStatusError(
                f"{response.request.method} {response.request.url.path} returned "
                f"HTTP {response.status_code}: {detail}",
                request=response.request,
                response=response,
            )
        return response.json()


@pytest.fixture(scope="session")
def kube_admin(cluster: TestCluster | ExternalCluster) -> Iterator[KubeAdmin]:
    admin = KubeAdmin(cluster)
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def namespace(kube_admin: KubeAdmin) -> Iterator[str]:
    """Create a namespace with a unique name and delete it after the test.

    The local test bed has no namespace controller, so a deleted namespace stays
    in phase Terminating with its objects; unique names keep tests apart anyway.
    """
    name = f"logstream-test-{uuid.uuid4().hex[:10]}"
    kube_admin.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        response = kube_admin.client.delete(f"/api/v1/namespaces/{name}")
        if response.status_code not in (200, 202, 404):
            KubeAdmin._checked(response)
