"""Builders for Kubernetes objects as plain dicts.

The same shapes serve unit tests (fed straight to the correlator) and integration tests
(created in the real API server), so every builder returns an object the API server
accepts. Unit tests set `uid`s themselves; the API server assigns its own.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

Obj = dict[str, Any]
_serial = itertools.count(1)


def _uid(prefix: str) -> str:
    return f"{prefix}-{next(_serial):04d}"


def container(name: str = "dev", *, image: str = "registry.example.com/dev/base:1", env: list[Obj] | None = None, **extra: Any) -> Obj:
    body: Obj = {"name": name, "image": image}
    if env:
        body["env"] = env
    body.update(extra)
    return body


def token_env(token: str) -> list[Obj]:
    return [{"name": "CODER_AGENT_TOKEN", "value": token}]


def pod(
    name: str,
    *,
    namespace: str = "coder-ws",
    uid: str | None = None,
    containers: list[Obj] | None = None,
    init_containers: list[Obj] | None = None,
    volumes: list[Obj] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: Obj | None = None,
    token: str | None = None,
) -> Obj:
    spec: Obj = {"containers": containers or [container(env=token_env(token) if token else None)]}
    if init_containers:
        spec["initContainers"] = init_containers
    if volumes:
        spec["volumes"] = volumes
    meta: Obj = {"name": name, "namespace": namespace, "uid": uid or _uid("pod")}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if owner:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": "Pending"}}


def owner_ref(obj: Obj) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
    }


def replicaset(name: str, *, namespace: str = "coder-ws", uid: str | None = None, token: str | None = None, template_spec: Obj | None = None) -> Obj:
    labels = {"app": name}
    spec = template_spec or {"containers": [container(env=token_env(token) if token else None)]}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or _uid("rs")},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def event(
    target: Obj,
    *,
    reason: str,
    message: str,
    type: str = "Warning",
    count: int = 1,
    uid: str | None = None,
    name: str | None = None,
    container_name: str | None = None,
    at: str = "2026-01-01T10:00:00Z",
) -> Obj:
    meta = target["metadata"]
    involved: Obj = {
        "apiVersion": target.get("apiVersion", "v1"),
        "kind": target["kind"],
        "name": meta["name"],
        "namespace": meta["namespace"],
        "uid": meta["uid"],
    }
    if container_name:
        involved["fieldPath"] = f"spec.containers{{{container_name}}}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name or f"{meta['name']}.{next(_serial):x}", "namespace": meta["namespace"], "uid": uid or _uid("ev")},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": type,
        "count": count,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "source": {"component": "test"},
    }


def with_count(ev: Obj, count: int, message: str | None = None) -> Obj:
    """The same event after the recorder counted it again."""
    updated = copy.deepcopy(ev)
    updated["count"] = count
    if message is not None:
        updated["message"] = message
    return updated


def with_container_status(p: Obj, name: str = "dev", *, restarts: int = 0, waiting: Obj | None = None, last_terminated: Obj | None = None, ready: bool = False, phase: str = "Running") -> Obj:
    updated = copy.deepcopy(p)
    status: Obj = {"name": name, "ready": ready, "restartCount": restarts, "image": "img", "imageID": "", "state": {}}
    if waiting:
        status["state"] = {"waiting": waiting}
    elif ready:
        status["state"] = {"running": {"startedAt": "2026-01-01T10:00:00Z"}}
    if last_terminated:
        status["lastState"] = {"terminated": last_terminated}
    updated["status"] = {"phase": phase, "containerStatuses": [status]}
    return updated
