"""List then watch one resource in one namespace (or cluster-wide), forever.

A watcher owns nothing but its resourceVersion. It parses frames and puts them on the
correlator's queue, in the order the API server sent them:

* `Change(ADDED|MODIFIED|DELETED, obj)` for each object change;
* `Listed(uids, initial)` after each full list, naming every object the list held, so the
  correlator can notice deletions that happened while no watch was open.

Every (re)list replays all objects as ADDED; the correlator keys its state by uid and
emits a line only for what it has not emitted before, so a relist never repeats a line.
The loop survives everything except cancellation: 410 (HTTP or ERROR frame) relists at
once, a watch the server ends cleanly resumes from the last resourceVersion, and any
other failure relists after a capped, jittered backoff. Each restart is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from typing import Any, Literal

from logstream.kube.api import JsonDict, KubeApi, KubeError, status_error
from logstream.kube.resources import Resource
from logstream.ops.logs import fields
from logstream.ops.metrics import Metrics

log = logging.getLogger("logstream.kube")

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]

# Server-side watch length: the API server ends the watch after this; we resume from
# the last resourceVersion. Shorter than the server's own 30-60 min default.
WATCH_SECONDS = 600
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Change:
    resource: Resource
    type: ChangeType
    obj: JsonDict
    # True for objects of the watcher's first list: they existed before the controller
    # started, so they are indexed but their past is not replayed.
    initial: bool = False


@dataclass(frozen=True, slots=True)
class Listed:
    """A full list of `resource` in `namespace` (None = cluster-wide) just finished."""

    resource: Resource
    namespace: str | None
    uids: frozenset[str]
    initial: bool


Message = Change | Listed


class Watcher:
    """Keeps `queue` fed with the changes of one resource in one namespace."""

    def __init__(
        self,
        *,
        api: KubeApi,
        resource: Resource,
        namespace: str | None,
        queue: asyncio.Queue[Message],
        metrics: Metrics,
        label_selector: str = "",
        field_selector: str = "",
        page_size: int = 500,
        read_timeout_seconds: float = 90.0,
    ) -> None:
        self._api = api
        self._resource = resource
        self._namespace = namespace
        self._queue = queue
        self._metrics = metrics
        self._page_size = page_size
        self._read_timeout = read_timeout_seconds
        self._selectors: dict[str, str] = {}
        if label_selector and resource.takes_label_selector:
            self._selectors["labelSelector"] = label_selector
        if field_selector and resource.takes_field_selector:
            self._selectors["fieldSelector"] = field_selector
        self._path = resource.collection_path(namespace)
        self.synced = asyncio.Event()
        self._resource_version = ""
        self._saw_frame = False
        # Looking up a labelled counter costs more than the increment, so do it once per type.
        self._change_counters = {
            kind: metrics.kube_changes.labels(resource=resource.plural, type=kind)
            for kind in ("ADDED", "MODIFIED", "DELETED")
        }

    @property
    def resource(self) -> Resource:
        return self._resource

    @property
    def scope(self) -> str:
        return self._namespace or "cluster-wide"

    async def run(self) -> None:
        """List and watch until cancelled."""
        failures = 0
        initial = True
        while True:
            try:
                if not self._resource_version:
                    await self._list(initial=initial)
                    initial = False
                    if not self.synced.is_set():
                        self.synced.set()
                        self._metrics.watchers_synced.inc()
                await self._watch()
                # The server ended the watch after WATCH_SECONDS: resume where it stopped.
                failures = 0
                continue
            except KubeError as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - a watcher must outlive any bad reply
                log.exception(
                    "unexpected watch failure",
                    extra=fields(resource=self._resource.plural, scope=self.scope),
                )
                error = KubeError(0, type(exc).__name__, str(exc))
            # A watch that delivered frames, or that got a response and then stayed quiet,
            # was healthy: start the backoff over.
            failures = 1 if self._saw_frame else failures + 1
            self._saw_frame = False
            await self._recover(error, failures)
            if error.idle:
                failures = 0

    async def _recover(self, exc: KubeError, failures: int) -> None:
        if exc.idle:
            # The test bed's API server sent no bookmark for 90 s on watches of resource
            # types nothing changed, so a quiet watch can look like a dead connection.
            # Reopening from the last resourceVersion costs one request either way.
            self._count_restart("idle")
            log.info(
                "watch sent nothing for the read timeout; reopening it",
                extra=fields(resource=self._resource.plural, scope=self.scope, error=exc.message),
            )
            return
        if exc.gone:
            self._resource_version = ""
            self._count_restart("expired")
            log.info(
                "resource version expired, relisting",
                extra=fields(resource=self._resource.plural, scope=self.scope, error=exc.message),
            )
            return

        delay = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (failures - 1))
        delay *= random.uniform(0.5, 1.0)
        self._count_restart("forbidden" if exc.status == 403 else "error")
        log.warning(
            "watch failed, restarting",
            extra=fields(
                resource=self._resource.plural,
                scope=self.scope,
                error=str(exc),
                attempt=failures,
                delay_s=round(delay, 2),
                hint=_hint(exc, self._resource, self._namespace),
            ),
        )
        await asyncio.sleep(delay)

    def _count_restart(self, cause: str) -> None:
        self._metrics.watch_restarts.labels(resource=self._resource.plural, cause=cause).inc()

    async def _list(self, *, initial: bool) -> None:
        """Read the whole collection page by page, then report what it held."""
        uids: set[str] = set()
        params: dict[str, str | int] = {"limit": self._page_size, **self._selectors}
        while True:
            page = await self._api.request("GET", self._path, params=params)
            for obj in page.get("items") or []:
                if not isinstance(obj, dict):
                    continue
                uid = (obj.get("metadata") or {}).get("uid")
                if isinstance(uid, str):
                    uids.add(uid)
                await self._put(Change(self._resource, "ADDED", obj, initial))
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                self._resource_version = str(meta.get("resourceVersion") or "")
                break
            params["continue"] = meta["continue"]
        await self._queue.put(Listed(self._resource, self._namespace, frozenset(uids), initial))

    async def _watch(self) -> None:
        params: dict[str, str | int] = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": self._resource_version,
            "timeoutSeconds": WATCH_SECONDS,
            **self._selectors,
        }
        async for raw in self._api.stream(
            self._path, params=params, read_timeout_seconds=self._read_timeout
        ):
            await self._handle_frame(raw)

    async def _handle_frame(self, raw: bytes) -> None:
        try:
            frame: Any = json.loads(raw)
            kind = frame["type"]
            obj = frame["object"]
        except (ValueError, KeyError, TypeError):
            # The frame itself is not logged: a pod frame can carry a token in its env.
            log.warning(
                "skipping a watch frame that is not a JSON watch event",
                extra=fields(resource=self._resource.plural, scope=self.scope, bytes=len(raw)),
            )
            return
        if not isinstance(obj, dict):
            return

        if kind == "ERROR":
            raise status_error(obj)
        self._saw_frame = True
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if isinstance(version, str) and version:
            self._resource_version = version
        if kind == "BOOKMARK":
            return
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            await self._put(Change(self._resource, kind, obj))

    async def _put(self, change: Change) -> None:
        self._change_counters[change.type].inc()
        await self._queue.put(change)


def _hint(exc: KubeError, resource: Resource, namespace: str | None) -> str | None:
    """The operator's next step for the failures that have an obvious one."""
    if exc.status == 403:
        where = f"in namespace {namespace!r}" if namespace else "cluster-wide"
        return (
            f"grant list and watch on {resource.plural} {where} to the controller's "
            "service account, or limit --namespaces to namespaces it may read"
        )
    if exc.status == 0:
        return "check that the API server is reachable from the controller"
    return None
