"""Find where a pod (or pod template) keeps its Coder agent token.

Pure functions over the spec dict; nothing here reads a Secret. The result names each
source so the correlator can resolve it:

* `env[].value` of `CODER_AGENT_TOKEN`: the token itself;
* `env[].valueFrom.secretKeyRef` and `envFrom[].secretRef` (prefix honoured): a Secret key;
* `CODER_AGENT_TOKEN_FILE`: the Secret key behind the file, found through the container's
  volume mounts and the pod's `secret` or `projected` volumes;
* the annotation `ANNOTATION` (`<secret>` or `<secret>/<key>`) on the pod or template, for
  templates that deliver the token some other way.

Containers and init containers both count. Within one container `env` wins over
`envFrom`, as in the kubelet. Results are de-duplicated.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

TOKEN_VAR = "CODER_AGENT_TOKEN"
TOKEN_FILE_VAR = "CODER_AGENT_TOKEN_FILE"
ANNOTATION = "logstream.coder.com/agent-token-secret"


@dataclass(frozen=True, slots=True)
class InlineToken:
    value: str


@dataclass(frozen=True, slots=True)
class SecretKeyToken:
    secret: str
    key: str
    optional: bool
    origin: str  # where it was found, for log lines: "env", "envFrom", "file", "annotation"


TokenSource = InlineToken | SecretKeyToken


def token_sources(spec: Any, annotations: Any = None) -> list[TokenSource]:
    """Every distinct token source in a pod spec, in container order."""
    if not isinstance(spec, dict):
        return []
    found: list[TokenSource] = []
    volumes = _volumes_by_name(spec)
    for container in _containers(spec):
        source = _from_container(container, volumes)
        if source is not None and source not in found:
            found.append(source)
    annotated = _from_annotation(annotations)
    if annotated is not None and annotated not in found:
        found.append(annotated)
    return found


def claim_names(spec: Any) -> tuple[str, ...]:
    """Names of the PersistentVolumeClaims a pod mounts."""
    names = []
    for volume in _list(spec.get("volumes") if isinstance(spec, dict) else None):
        claim = volume.get("persistentVolumeClaim")
        if isinstance(claim, dict) and isinstance(claim.get("claimName"), str):
            names.append(claim["claimName"])
    return tuple(names)


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return _list(spec.get("initContainers")) + _list(spec.get("containers"))


def _list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _volumes_by_name(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in _list(spec.get("volumes")) if isinstance(v.get("name"), str)}


def _from_container(
    container: dict[str, Any], volumes: dict[str, dict[str, Any]]
) -> TokenSource | None:
    env = {e.get("name"): e for e in _list(container.get("env"))}
    if TOKEN_VAR in env:
        return _from_env_var(env[TOKEN_VAR])
    from_env_from = _from_env_from(_list(container.get("envFrom")))
    if from_env_from is not None:
        return from_env_from
    file_var = env.get(TOKEN_FILE_VAR)
    if file_var is not None and isinstance(file_var.get("value"), str):
        return _from_file(file_var["value"], _list(container.get("volumeMounts")), volumes)
    return None


def _from_env_var(var: dict[str, Any]) -> TokenSource | None:
    value = var.get("value")
    if isinstance(value, str) and value.strip():
        return InlineToken(value.strip())
    ref = (var.get("valueFrom") or {}).get("secretKeyRef")
    if isinstance(ref, dict) and isinstance(ref.get("name"), str) and isinstance(ref.get("key"), str):
        return SecretKeyToken(ref["name"], ref["key"], bool(ref.get("optional")), "env")
    return None


def _from_env_from(sources: list[dict[str, Any]]) -> TokenSource | None:
    # Later entries override earlier ones in the kubelet, so the last match wins.
    match: TokenSource | None = None
    for source in sources:
        ref = source.get("secretRef")
        prefix = source.get("prefix") or ""
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
            continue
        if not isinstance(prefix, str) or not TOKEN_VAR.startswith(prefix):
            continue
        key = TOKEN_VAR[len(prefix) :]
        match = SecretKeyToken(ref["name"], key, bool(ref.get("optional")), "envFrom")
    return match


def _from_file(
    path: str, mounts: list[dict[str, Any]], volumes: dict[str, dict[str, Any]]
) -> TokenSource | None:
    """Follow the token file's path to the Secret key that backs it."""
    path = posixpath.normpath(path)
    for mount in sorted(mounts, key=lambda m: len(str(m.get("mountPath", ""))), reverse=True):
        mount_path = posixpath.normpath(str(mount.get("mountPath", "")))
        if path != mount_path and not path.startswith(mount_path.rstrip("/") + "/"):
            continue
        inside = posixpath.relpath(path, mount_path) if path != mount_path else ""
        sub_path = str(mount.get("subPath") or "")
        relative = posixpath.normpath(posixpath.join(sub_path, inside)) if sub_path else inside
        volume = volumes.get(str(mount.get("name")))
        return _key_in_volume(volume, relative) if volume else None
    return None


def _key_in_volume(volume: dict[str, Any], relative: str) -> TokenSource | None:
    secret = volume.get("secret")
    if isinstance(secret, dict) and isinstance(secret.get("secretName"), str):
        key = _key_for_path(_list(secret.get("items")), relative)
        if key is not None:
            return SecretKeyToken(secret["secretName"], key, bool(secret.get("optional")), "file")
    projected = volume.get("projected")
    if isinstance(projected, dict):
        for source in _list(projected.get("sources")):
            ref = source.get("secret")
            if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
                continue
            key = _key_for_path(_list(ref.get("items")), relative)
            if key is not None:
                return SecretKeyToken(ref["name"], key, bool(ref.get("optional")), "file")
    return None


def _key_for_path(items: list[dict[str, Any]], relative: str) -> str | None:
    """Without `items` every key is a file named after it; with them only the mapped ones."""
    if not items:
        return relative if relative and "/" not in relative else None
    for item in items:
        if posixpath.normpath(str(item.get("path", ""))) == relative:
            key = item.get("key")
            return key if isinstance(key, str) else None
    return None


def _from_annotation(annotations: Any) -> TokenSource | None:
    if not isinstance(annotations, dict):
        return None
    value = annotations.get(ANNOTATION)
    if not isinstance(value, str) or not value.strip():
        return None
    secret, _, key = value.strip().partition("/")
    return SecretKeyToken(secret, key or TOKEN_VAR, False, "annotation")
