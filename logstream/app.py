"""Wire the stages together and run them until SIGTERM.

    watchers --Change/Listed--> queue --> correlator --LogLine--> sink (dispatcher | printer)

Startup order: connect to Kubernetes and check Coder. With leader election, read the
delivery checkpoint; the sink is then the leadership gate of `logstream.ha`. Open the ops
server and start the elector, then the watchers of indexed kinds (pods, workloads,
claims). Only once they have listed start the event watchers, so every event finds its
object in the index.

Shutdown order: stop the watchers, let the correlator finish what is queued, and flush
the sink within the shutdown timeout. With leader election, then record the delivery
progress and release the Lease. Close the clients last.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Mapping
from contextlib import AsyncExitStack

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    disable_created_metrics,
)

from logstream.config import Settings
from logstream.correlate.correlator import Baseline, Correlator
from logstream.deliver.coder import CoderClient
from logstream.deliver.dispatcher import Dispatcher
from logstream.deliver.errors import CoderConnectionError, CoderError, NotCoderServerError
from logstream.deliver.printer import PrintSink
from logstream.deliver.sender import DeliveredCallback, DeliveryOptions
from logstream.ha.replica import HaOptions, HaSetupError, Replica
from logstream.kube.api import KubeApi
from logstream.kube.client import KubeConfigError, connect, readable_kubeconfigs
from logstream.kube.resources import EVENTS, INDEXED, Resource
from logstream.kube.secrets import SecretReader
from logstream.kube.watcher import Message, Watcher
from logstream.lines import LineSink
from logstream.ops.logs import fields
from logstream.ops.metrics import Metrics
from logstream.ops.server import OpsServer

log = logging.getLogger("logstream")

# Changes waiting for the correlator; a full queue makes watchers wait (backpressure).
QUEUE_MAX_CHANGES = 10_000
KUBE_REQUEST_TIMEOUT_SECONDS = 30.0


def freeze_startup_objects() -> None:
    """Exclude every object that exists now from garbage collection passes.

    The imports leave about 90,000 tracked objects that live as long as the process,
    mostly kubernetes_asyncio's models. Each watch frame allocates hundreds of objects,
    so full collections are frequent, and without this each one walks all of those.
    Measured in docs/benchmarks.md: about a quarter of the CPU time per frame.
    """
    gc.freeze()


class ConfigurationProblem(Exception):
    """Found at startup: the settings cannot work. The CLI exits with code 2."""


async def run(settings: Settings) -> int:
    """Run the controller until SIGTERM or SIGINT; the process exit code."""
    # `_created` series double the output and no dashboard uses them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = Metrics()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        metrics.registry.register(collector)

    try:
        kubeconfigs = readable_kubeconfigs(settings.kubeconfig_paths)
        api_client = await connect(kubeconfigs)
    except KubeConfigError as exc:
        raise ConfigurationProblem(str(exc)) from exc

    async with AsyncExitStack() as stack:
        stack.push_async_callback(api_client.close)
        api = KubeApi(api_client, request_timeout_seconds=KUBE_REQUEST_TIMEOUT_SECONDS)
        replica: Replica | None = None
        baseline: Baseline | None = None
        if settings.leader_elect:
            replica = Replica(api, options=HaOptions.from_settings(settings), metrics=metrics)
            try:
                baseline = await replica.load_baseline()
            except HaSetupError as exc:
                raise ConfigurationProblem(str(exc)) from exc

        sink, failure = await _open_sink(
            settings, metrics, stack, on_delivered=replica.recorder.delivered if replica else None
        )
        failures = {"delivery": failure} if failure is not None else {}
        if replica is not None:
            assert isinstance(sink, Dispatcher)  # the settings forbid --dry-run with it
            dispatcher, sink = sink, replica.gate(sink)
            failures["leader election"] = replica.wait_until_failed()
        elif not settings.dry_run:
            metrics.is_leader.set(1)
        pipeline = Pipeline(settings=settings, api=api, sink=sink, metrics=metrics, baseline=baseline)

        address = settings.metrics_host_port
        if address is not None:
            server = OpsServer(
                host=address[0], port=address[1], registry=metrics.registry, ready=pipeline.ready
            )
            await server.start()
            stack.push_async_callback(server.stop)

        try:
            if replica is not None:
                replica.start()
            return await pipeline.run(failures=failures)
        finally:
            if replica is not None:
                # Flush while still renewing the Lease, then record and release it.
                await dispatcher.close()
                await replica.finish()
    return 1  # unreachable; keeps type checkers content


async def _open_sink(
    settings: Settings,
    metrics: Metrics,
    stack: AsyncExitStack,
    *,
    on_delivered: DeliveredCallback | None = None,
) -> tuple[LineSink, Awaitable[None] | None]:
    """Open the dry-run printer, or a dispatcher on a checked Coder client.

    With leader election the dispatcher starts paused: only the leader sends.
    """
    if settings.dry_run:
        log.info("dry run: printing lines to stdout instead of sending them")
        return PrintSink(), None

    try:
        client = CoderClient(
            settings.coder_url, timeout_seconds=settings.request_timeout_seconds, metrics=metrics
        )
    except CoderError as exc:
        # An unreadable SSL_CERT_FILE or SSL_CERT_DIR is found here.
        raise ConfigurationProblem(str(exc)) from exc
    stack.push_async_callback(client.aclose)
    try:
        version = await client.fetch_server_version()
        log.info("connected to Coder", extra=fields(url=settings.coder_url, version=version))
    except NotCoderServerError as exc:
        raise ConfigurationProblem(str(exc)) from exc
    except (CoderConnectionError, CoderError) as exc:
        # Coder may be restarting; the senders retry until it answers.
        log.warning("Coder did not answer yet; continuing", extra=fields(error=str(exc)))

    dispatcher = Dispatcher(
        client,
        options=DeliveryOptions.from_settings(settings),
        metrics=metrics,
        on_delivered=on_delivered,
        sending_enabled=not settings.leader_elect,
    )
    stack.push_async_callback(dispatcher.close)
    return dispatcher, dispatcher.wait_until_failed()


class Pipeline:
    """Watchers, the change queue and the correlator, with an ordered shutdown."""

    def __init__(
        self,
        *,
        settings: Settings,
        api: KubeApi,
        sink: LineSink,
        metrics: Metrics,
        baseline: Baseline | None = None,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._metrics = metrics
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=QUEUE_MAX_CHANGES)
        self.correlator = Correlator(
            sink=sink, secrets=SecretReader(api), metrics=metrics, baseline=baseline
        )
        namespaces: list[str | None] = list(settings.namespace_list) or [None]
        self.index_watchers = [self._watcher(api, r, ns) for ns in namespaces for r in INDEXED]
        self.event_watchers = [self._watcher(api, EVENTS, ns) for ns in namespaces]

    def _watcher(self, api: KubeApi, resource: Resource, namespace: str | None) -> Watcher:
        return Watcher(
            api=api,
            resource=resource,
            namespace=namespace,
            queue=self._queue,
            metrics=self._metrics,
            label_selector=self._settings.label_selector,
            field_selector=self._settings.field_selector,
            page_size=self._settings.list_page_size,
            read_timeout_seconds=self._settings.watch_read_timeout_seconds,
        )

    def ready(self) -> bool:
        """True once every watcher, events included, has finished its first list."""
        watchers = self.index_watchers + self.event_watchers
        return all(w.synced.is_set() for w in watchers)

    async def run(self, *, failures: Mapping[str, Awaitable[None]] | None = None) -> int:
        """Run until a stop signal, or until a worker or one of the named `failures` ends."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

        workers = [asyncio.create_task(self.correlator.run(self._queue), name="correlator")]
        workers += [
            asyncio.create_task(w.run(), name=f"watch {w.resource.plural} {w.scope}")
            for w in self.index_watchers
        ]
        workers.append(asyncio.create_task(self._start_event_watchers(), name="event watchers"))
        waiters = [asyncio.create_task(_wait(stop), name="stop signal")]
        waiters += [
            asyncio.create_task(_as_coroutine(failure), name=name)
            for name, failure in (failures or {}).items()
        ]
        log.info(
            "watching",
            extra=fields(
                namespaces=",".join(self._settings.namespace_list) or "cluster-wide",
                label_selector=self._settings.label_selector or None,
                field_selector=self._settings.field_selector or None,
            ),
        )

        done, _ = await asyncio.wait(workers + waiters, return_when=asyncio.FIRST_COMPLETED)
        exit_code = 0 if stop.is_set() else _report_failure(done)
        log.info("shutting down", extra=fields(reason="signal" if stop.is_set() else "failure"))
        await self._shutdown(workers, waiters)
        return exit_code

    async def _start_event_watchers(self) -> None:
        await asyncio.gather(*(w.synced.wait() for w in self.index_watchers))
        # The correlator may still be indexing what was listed; the event watchers' changes
        # queue up behind it, so every event still finds its object.
        log.info("pods, workloads and claims listed; starting the event watchers")
        async with asyncio.TaskGroup() as group:
            for watcher in self.event_watchers:
                group.create_task(watcher.run(), name=f"watch events {watcher.scope}")

    async def _shutdown(self, workers: list[asyncio.Task[None]], waiters: list[asyncio.Task[None]]) -> None:
        correlator_task, watcher_tasks = workers[0], workers[1:]
        for task in watcher_tasks + waiters:
            task.cancel()
        await asyncio.gather(*watcher_tasks, *waiters, return_exceptions=True)

        # What the watchers already queued still becomes lines before the sink flushes.
        correlator_task.cancel()
        await asyncio.gather(correlator_task, return_exceptions=True)
        while not self._queue.empty():
            await self.correlator.handle(self._queue.get_nowait())


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


def _report_failure(done: set[asyncio.Task[None]]) -> int:
    for task in done:
        error = task.exception() if not task.cancelled() else None
        if error is not None:
            log.error(
                "a controller task failed; exiting",
                extra=fields(task=task.get_name(), error=repr(error)),
                exc_info=error,
            )
    return 1
