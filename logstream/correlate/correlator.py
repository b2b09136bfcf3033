"""Turn watch changes into log lines for agent tokens.

The correlator is the single owner of the workspace index. It runs as one task reading
one queue that every watcher writes to, so its state is never touched concurrently and
the lines for a token leave in the order the changes arrived. It emits through a
`LineSink` (the dispatcher or the dry-run printer), whose `submit` never blocks.

Startup rule: changes from a watcher's first list (`Change.initial`) index objects and
record what they already show (event occurrences, container states) without emitting;
only what happens after that becomes a line. Later lists are diffed against this memory,
so a relist or reconnect never repeats a line. A `Baseline` (leader election with a
delivery checkpoint, see `logstream.ha`) refines the rule: it names the signals of a first
list that were never delivered, and those become lines too.

A bad object is logged with what identifies it and skipped; it never stops the task.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from logstream.correlate.events import BadObject, EventView, parse_time, read_event
from logstream.correlate.index import WORKSPACE_LABELS, Tracked, Uid, WorkspaceIndex
from logstream.correlate.podstatus import PodStatusMemory
from logstream.correlate.tokens import (
    InlineToken,
    SecretKeyToken,
    TokenSource,
    claim_names,
    token_sources,
)
from logstream.kube.resources import EVENTS, PODS, PVCS, WORKLOADS
from logstream.kube.watcher import Change, Listed, Message
from logstream.lines import AgentToken, Level, LineSink, LogLine, fingerprint, truncate
from logstream.ops.logs import fields
from logstream.ops.metrics import Metrics

log = logging.getLogger("logstream.correlate")

# Events whose object is not indexed yet wait here briefly: the event and pod watches
# are separate streams, so a pod's first event can arrive before the pod itself.
PENDING_MAX_EVENTS = 2000
PENDING_MAX_AGE_SECONDS = 30.0
# Objects that name an agent token whose Secret could not be read, by uid, with their
# latest change. An event for one of them retries the Secret, so a workspace whose
# Secret appears after its pod is tracked as soon as Kubernetes reports on the pod.
UNRESOLVED_MAX_OBJECTS = 2000

_WORKLOAD_KINDS = {resource.kind for resource in WORKLOADS}


class SecretLookup(Protocol):
    async def read_key(self, namespace: str, name: str, key: str) -> str | None: ...

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is cached for the Secret, so that the next read fetches it."""


class Baseline(Protocol):
    """Record of the lines delivered before this process started, for first-list changes.

    Both methods are called from the correlator's task and return at once.
    """

    def owed(self, signal: str, *, object_uid: Uid, object_created: datetime | None = None) -> bool:
        """Tell whether the line for `signal`, found in a first list, was never delivered.

        `object_created` is given with the `created/<uid>` signal, which is asked first
        for every object of a first list.
        """

    def forget(self, object_uid: Uid) -> None:
        """Mark the object as gone, so its record may be pruned."""


class NoBaseline:
    """The plain startup rule: nothing found in a first list is owed."""

    def owed(self, signal: str, *, object_uid: Uid, object_created: datetime | None = None) -> bool:
        return False

    def forget(self, object_uid: Uid) -> None:
        pass


class Correlator:
    """Reads `Message`s, keeps the index, submits `LogLine`s."""

    def __init__(
        self,
        *,
        sink: LineSink,
        secrets: SecretLookup,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        baseline: Baseline | None = None,
    ) -> None:
        self._sink = sink
        self._baseline: Baseline = baseline if baseline is not None else NoBaseline()
        self._secrets = secrets
        self._metrics = metrics
        self._clock = clock
        self.index = WorkspaceIndex()
        self._pending: OrderedDict[str, tuple[float, Change]] = OrderedDict()
        self._unresolved: OrderedDict[str, Change] = OrderedDict()
        self._forbidden_warned: set[str] = set()

    async def run(self, queue: asyncio.Queue[Message]) -> None:
        """Process messages until cancelled."""
        while True:
            message = await queue.get()
            await self.handle(message)

    async def handle(self, message: Message) -> None:
        """Process one message; a failure is logged with the object and skipped."""
        try:
            if isinstance(message, Listed):
                self._on_listed(message)
            elif message.resource is EVENTS:
                await self._on_event(message)
            elif message.resource is PVCS:
                self._on_claim(message)
            else:
                await self._on_workload(message)
        except Exception as exc:  # noqa: BLE001 - one bad object must not stop the rest
            obj = message.obj if isinstance(message, Change) else {}
            log.warning(
                "skipping an object that could not be processed",
                extra=fields(
                    resource=message.resource.plural, object=_describe(obj), error=repr(exc)
                ),
                exc_info=not isinstance(exc, (BadObject, KeyError, TypeError, ValueError)),
            )
        self._metrics.workspace_objects.set(len(self.index))

    # Pods and workload objects -------------------------------------------------------

    async def _on_workload(self, change: Change, *, refresh: bool = False) -> None:
        meta = change.obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("uid"), str):
            raise BadObject("object without metadata.uid")
        uid = meta["uid"]

        if change.type == "DELETED":
            self._unresolved.pop(uid, None)
            self._forget(uid, announce=True)
            return

        entry = self.index.get(uid)
        if entry is None:
            entry = await self._start_tracking(change, meta, refresh=refresh)
            if entry is None:
                return
        if entry.status is not None:
            signals = entry.status.observe(change.obj.get("status"))
            for signal in signals:
                signal_id = f"status/{uid}/{signal.key}"
                if not change.initial or self._baseline.owed(signal_id, object_uid=entry.uid):
                    when = parse_time(signal.time_text) or self._clock()
                    self._emit(entry, signal.level, signal.text, when, signal_id)

    async def _start_tracking(
        self, change: Change, meta: dict[str, Any], *, refresh: bool = False
    ) -> Tracked | None:
        kind = change.resource.kind
        is_pod = change.resource is PODS
        spec, annotations = _pod_spec_of(change.obj, is_pod)
        namespace = str(meta.get("namespace") or "")
        name = str(meta.get("name") or "")

        sources = token_sources(spec, annotations)
        if refresh:
            for source in sources:
                if isinstance(source, SecretKeyToken):
                    self._secrets.forget(namespace, source.secret)
        tokens = await self._resolve(sources, namespace, kind, name, meta)
        if not tokens and is_pod:
            tokens = self._owner_tokens(meta)
        if not tokens:
            if sources:
                self._remember_unresolved(meta["uid"], change)
            return None
        self._unresolved.pop(meta["uid"], None)

        entry = Tracked(
            uid=Uid(meta["uid"]),
            kind=kind,
            namespace=namespace,
            name=name,
            tokens=tokens,
            workspace=_workspace_labels(meta),
            claims=claim_names(spec) if is_pod else (),
            status=PodStatusMemory() if is_pod else None,
        )
        self.index.add(entry)
        log.info(
            "tracking workspace object",
            extra=fields(
                object=entry.display,
                uid=entry.uid,
                agents=",".join(fingerprint(t) for t in tokens),
                **entry.workspace,
            ),
        )

        created_at = parse_time(meta.get("creationTimestamp"))
        signal = f"created/{entry.uid}"
        if not change.initial or self._baseline.owed(
            signal, object_uid=entry.uid, object_created=created_at
        ):
            text = f"Pod {name} created" if is_pod else f"{kind} {name} is creating a pod for this workspace"
            self._emit(entry, Level.INFO, text, created_at or self._clock(), signal)
        self._replay_pending(entry.uid)
        return entry

    def _remember_unresolved(self, uid: str, change: Change) -> None:
        self._unresolved.pop(uid, None)
        self._unresolved[uid] = change
        while len(self._unresolved) > UNRESOLVED_MAX_OBJECTS:
            self._unresolved.popitem(last=False)

    def _owner_tokens(self, meta: dict[str, Any]) -> tuple[AgentToken, ...]:
        """A pod whose token cannot be read itself routes to its tracked owner's tokens."""
        for owner in meta.get("ownerReferences") or []:
            if isinstance(owner, dict) and owner.get("kind") in _WORKLOAD_KINDS:
                tracked = self.index.get(str(owner.get("uid") or ""))
                if tracked is not None:
                    return tracked.tokens
        return ()

    async def _resolve(
        self,
        sources: list[TokenSource],
        namespace: str,
        kind: str,
        name: str,
        meta: dict[str, Any],
    ) -> tuple[AgentToken, ...]:
        tokens: list[AgentToken] = []
        for source in sources:
            token = await self._resolve_one(source, namespace, kind, name, meta)
            if token and AgentToken(token) not in tokens:
                tokens.append(AgentToken(token))
        return tuple(tokens)

    async def _resolve_one(
        self, source: TokenSource, namespace: str, kind: str, name: str, meta: dict[str, Any]
    ) -> str | None:
        if isinstance(source, InlineToken):
            return source.value
        assert isinstance(source, SecretKeyToken)
        try:
            value = await self._secrets.read_key(namespace, source.secret, source.key)
        except PermissionError:
            self._warn_forbidden(kind, namespace, name, meta, source)
            return None
        if value is None and not source.optional:
            log.info(
                "agent token secret not found yet",
                extra=fields(
                    object=f"{kind} {namespace}/{name}", secret=source.secret, key=source.key
                ),
            )
        return value

    def _warn_forbidden(
        self, kind: str, namespace: str, name: str, meta: dict[str, Any], source: SecretKeyToken
    ) -> None:
        uid = str(meta.get("uid"))
        if uid in self._forbidden_warned:
            return
        self._forbidden_warned.add(uid)
        log.warning(
            "not allowed to read the agent token secret; no lines for this object",
            extra=fields(
                object=f"{kind} {namespace}/{name}",
                secret=f"{namespace}/{source.secret}",
                hint="grant get on secrets in this namespace to the controller's service account",
            ),
        )

    def _forget(self, uid: str, *, announce: bool) -> None:
        self._forbidden_warned.discard(uid)
        entry = self.index.get(uid)
        if entry is None:
            return
        self._baseline.forget(entry.uid)
        if announce and entry.kind == PODS.kind:
            self._emit(entry, Level.INFO, f"Pod {entry.name} deleted", self._clock(), f"deleted/{uid}")
        _, released = self.index.remove(uid)
        log.info("stopped tracking workspace object", extra=fields(object=entry.display, uid=uid))
        for token in released:
            self._sink.release(token)

    def _on_listed(self, listed: Listed) -> None:
        """After a relist, objects that vanished while no watch was open are deleted."""
        if listed.initial or listed.resource in (EVENTS, PVCS):
            return
        for uid in self.index.uids_of(listed.resource.kind, listed.namespace):
            if uid not in listed.uids:
                self._forget(uid, announce=True)

    # Claims --------------------------------------------------------------------------

    def _on_claim(self, change: Change) -> None:
        """Report a claim's phase changes to the pods that mount it."""
        meta = change.obj.get("metadata") or {}
        phase = (change.obj.get("status") or {}).get("phase")
        if change.initial or change.type == "DELETED" or not isinstance(phase, str):
            return
        claim_key = f"claim/{meta.get('uid')}/{phase}"
        for pod in self.index.pods_mounting(str(meta.get("namespace")), str(meta.get("name"))):
            if claim_key in pod.events:
                continue
            pod.events[claim_key] = (1, phase)
            level = Level.WARN if phase == "Lost" else Level.INFO
            text = f"PersistentVolumeClaim {meta.get('name')} is {phase}"
            self._emit(pod, level, text, self._clock(), f"{claim_key}/{pod.uid}")

    # Events --------------------------------------------------------------------------

    async def _on_event(self, change: Change) -> None:
        if change.type == "DELETED":
            # The event expired (its TTL passed); forget it so memory stays bounded.
            self._drop_event_memory(change.obj)
            return
        event = read_event(change.obj)
        targets = self._targets(event)
        latest = self._unresolved.get(event.target_uid) if not targets else None
        if latest is not None:
            # The object's token Secret was missing: read it again, it may exist by now.
            await self._on_workload(latest, refresh=True)
            targets = self._targets(event)
        self._route_event(change, event, targets)

    def _route_event(self, change: Change, event: EventView, targets: list[Tracked]) -> None:
        if not targets:
            if not change.initial:
                self._hold_pending(event.target_uid, change)
            return
        self._deliver_event(event, targets, initial=change.initial)

    def _targets(self, event: EventView) -> list[Tracked]:
        if event.target_kind == PVCS.kind:
            return self.index.pods_mounting(event.target_namespace, event.target_name)
        if event.target_uid:
            found = self.index.get(event.target_uid)
        else:
            found = self.index.find_by_name(
                event.target_kind, event.target_namespace, event.target_name
            )
        return [found] if found is not None else []

    def _deliver_event(self, event: EventView, targets: list[Tracked], *, initial: bool) -> None:
        seen = (event.occurrences, event.message)
        for target in targets:
            before = target.events.get(event.uid)
            if before is not None and (before == seen or before[0] > event.occurrences):
                continue
            target.events[event.uid] = seen
            signal = f"event/{event.uid}/{event.occurrences}"
            if not initial or self._baseline.owed(signal, object_uid=target.uid):
                self._emit(target, event.level, event.render(), event.time, signal)

    def _drop_event_memory(self, obj: dict[str, Any]) -> None:
        uid = (obj.get("metadata") or {}).get("uid")
        target = obj.get("involvedObject") or {}
        entry = self.index.get(str(target.get("uid") or ""))
        if entry is not None and isinstance(uid, str):
            entry.events.pop(uid, None)

    def _hold_pending(self, target_uid: str, change: Change) -> None:
        if not target_uid:
            return
        key = f"{target_uid}/{(change.obj.get('metadata') or {}).get('uid')}"
        self._pending.pop(key, None)
        self._pending[key] = (asyncio.get_running_loop().time(), change)
        while len(self._pending) > PENDING_MAX_EVENTS:
            self._pending.popitem(last=False)

    def _replay_pending(self, uid: Uid) -> None:
        now = asyncio.get_running_loop().time()
        prefix = f"{uid}/"
        waiting = [key for key in self._pending if key.startswith(prefix)]
        for key in waiting:
            held_at, change = self._pending.pop(key)
            if now - held_at <= PENDING_MAX_AGE_SECONDS:
                event = read_event(change.obj)
                self._route_event(change, event, self._targets(event))

    # Output --------------------------------------------------------------------------

    def _emit(self, entry: Tracked, level: Level, text: str, when: datetime, signal: str) -> None:
        text = truncate(text)
        self._metrics.lines_produced.labels(level=level.value).inc()
        for token in entry.tokens:
            self._sink.submit(LogLine(token, level, text, when, signal))


def _pod_spec_of(obj: dict[str, Any], is_pod: bool) -> tuple[Any, Any]:
    """The pod spec and annotations of a pod, or of a workload's pod template."""
    if is_pod:
        return obj.get("spec"), (obj.get("metadata") or {}).get("annotations")
    template = (obj.get("spec") or {}).get("template") or {}
    return template.get("spec"), (template.get("metadata") or {}).get("annotations")


def _workspace_labels(meta: dict[str, Any]) -> dict[str, str]:
    labels = meta.get("labels")
    if not isinstance(labels, dict):
        return {}
    return {short: str(labels[label]) for label, short in WORKSPACE_LABELS.items() if label in labels}


def _describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return "<no metadata>"
    return f"{obj.get('kind') or '?'} {meta.get('namespace') or ''}/{meta.get('name') or '?'} uid={meta.get('uid')}"
