"""Kubernetes objects for the benchmarks, shaped like what a real API server returns.

Non-workspace pods look like a typical application pod: two containers with ordinary
environment variables, resource requests, probes, volumes, tolerations and one
`managedFields` entry, about 4 KB of JSON before status. Workspace pods carry
`CODER_AGENT_TOKEN` as an inline value. Events look like the kubelet's core/v1 events.

`uid` and `resourceVersion` are set only when a caller passes them: the processing
benchmark streams the objects as watch frames and needs both, while the benchmarks that
create objects in the real API server leave both to the server.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

CREATED_AT = "2026-01-01T10:00:00Z"
IMAGE = "registry.example.com/team/app:1.42.0"


def _metadata(
    name: str, namespace: str, *, uid: str | None, resource_version: str | None, manager: str
) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": namespace,
        "creationTimestamp": CREATED_AT,
        "labels": {"app.kubernetes.io/name": name.rsplit("-", 1)[0], "pod-template-hash": "7d9f8c6b5"},
        "managedFields": [
            {
                "manager": manager,
                "operation": "Update",
                "apiVersion": "v1",
                "time": CREATED_AT,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app.kubernetes.io/name": {}}}},
            }
        ],
    }
    if uid is not None:
        meta["uid"] = uid
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    return meta


def _app_container(name: str, index: int) -> Obj:
    return {
        "name": name,
        "image": IMAGE,
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "SERVICE_NAME", "value": f"app-{index % 50}"},
            {"name": "GOMAXPROCS", "value": "2"},
            {"name": "FEATURE_FLAGS", "value": "alpha,beta"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 10},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app"},
            {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True},
        ],
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def _pod_spec(containers: list[Obj]) -> Obj:
    return {
        "containers": containers,
        "volumes": [
            {"name": "config", "configMap": {"name": "app-config", "defaultMode": 420}},
            {
                "name": "kube-api-access",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    ],
                },
            },
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ],
        "priority": 0,
        "enableServiceLinks": True,
    }


def running_status(container_names: list[str], *, restarts: int = 0, finished_at: str = "") -> Obj:
    """Build the status of a running pod. With `restarts`, each container's last run ended in an OOM kill."""
    statuses = []
    for name in container_names:
        item: Obj = {
            "name": name,
            "ready": True,
            "restartCount": restarts,
            "image": IMAGE,
            "imageID": "registry.example.com/team/app@sha256:" + "ab" * 32,
            "containerID": "containerd://" + "cd" * 32,
            "started": True,
            "state": {"running": {"startedAt": CREATED_AT}},
        }
        if restarts:
            item["lastState"] = {
                "terminated": {
                    "exitCode": 137,
                    "reason": "OOMKilled",
                    "startedAt": CREATED_AT,
                    "finishedAt": finished_at or CREATED_AT,
                }
            }
        statuses.append(item)
    conditions = [
        {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": CREATED_AT}
        for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    return {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": "192.0.2.10",
        "podIP": "198.51.100.23",
        "startTime": CREATED_AT,
        "containerStatuses": statuses,
        "qosClass": "Burstable",
    }


def app_pod(
    name: str,
    namespace: str,
    index: int,
    *,
    uid: str | None = None,
    resource_version: str | None = None,
    with_status: bool = False,
) -> Obj:
    """Build a non-workspace pod: an application container and a proxy sidecar, no agent token."""
    containers = [_app_container("app", index), _app_container("proxy", index)]
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(name, namespace, uid=uid, resource_version=resource_version, manager="kube-controller-manager"),
        "spec": _pod_spec(containers),
    }
    if with_status:
        obj["status"] = running_status(["app", "proxy"])
    return obj


def workspace_pod(
    name: str,
    namespace: str,
    token: str,
    *,
    uid: str | None = None,
    resource_version: str | None = None,
) -> Obj:
    """Build a workspace pod whose `dev` container carries the agent token inline."""
    container = _app_container("dev", 0)
    container["env"] = [*container["env"], {"name": "CODER_AGENT_TOKEN", "value": token}]
    meta = _metadata(name, namespace, uid=uid, resource_version=resource_version, manager="terraform")
    meta["labels"].update({"com.coder.workspace.name": name, "com.coder.user.username": "bench"})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": _pod_spec([container])}


def event(
    target: Obj,
    name: str,
    *,
    reason: str = "Pulled",
    message: str = 'Container image "registry.example.com/team/app:1.42.0" already present on machine',
    event_type: str = "Normal",
    count: int = 1,
    uid: str | None = None,
    resource_version: str | None = None,
) -> Obj:
    """Build a core/v1 event about `target` as the kubelet records it. `target` needs metadata.uid."""
    meta = target["metadata"]
    involved = {
        "kind": target["kind"],
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": "v1",
        "resourceVersion": "4242",
        "fieldPath": "spec.containers{app}",
    }
    event_meta: Obj = {"name": name, "namespace": meta["namespace"], "creationTimestamp": CREATED_AT}
    if uid is not None:
        event_meta["uid"] = uid
    if resource_version is not None:
        event_meta["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": event_meta,
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": "node-7"},
        "firstTimestamp": CREATED_AT,
        "lastTimestamp": CREATED_AT,
        "count": count,
        "type": event_type,
        "eventTime": None,
        "reportingComponent": "kubelet",
        "reportingInstance": "node-7",
    }
