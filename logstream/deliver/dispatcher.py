"""The dispatcher: the `LineSink` that the correlator feeds, one sender task per agent.

    correlator --submit(line)--> Dispatcher --accept--> Sender (one task per token) --> Coder

`submit()` and `release()` are plain functions, not coroutines, so they cannot wait:
they hand the line to the agent's sender and return. The dispatcher owns the token -> sender map. Senders remove
their own entry when their task ends. No lock exists, and nothing the dispatcher holds
is touched across a network call, so one agent's slow or failing requests never delay
another agent's lines.

Lifecycle:
* `pause()` / `resume()` gate every request (for replicas that are not the leader); lines
  stay queued while paused.
* `close()` stops intake, lets each sender flush for `shutdown_timeout_seconds`, cancels
  the rest and counts their lines as dropped (`cause="shutdown"`). Calling it twice is
  harmless.
* `wait_until_failed()` lets a supervisor learn about errors that stop delivery for good:
  Coder no longer serving the log route, or a sender task that crashed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence

from logstream.deliver.errors import CoderRouteNotFound
from logstream.deliver.sender import (
    AgentState,
    DeliveredCallback,
    DeliveryOptions,
    LogClient,
    Sender,
)
from logstream.lines import AgentToken, LogLine
from logstream.ops.logs import fields
from logstream.ops.metrics import DROP_SHUTDOWN, Metrics

log = logging.getLogger("logstream.deliver")


def _ignore_delivered(lines: Sequence[LogLine]) -> None:
    pass


class Dispatcher:
    """Routes each line to its agent's sender and supervises the sender tasks."""

    def __init__(
        self,
        client: LogClient,
        *,
        options: DeliveryOptions,
        metrics: Metrics,
        on_delivered: DeliveredCallback | None = None,
        sending_enabled: bool = True,
    ) -> None:
        """Prepare an empty dispatcher; sender tasks start with the first line of each token.

        `on_delivered` is called with each batch after Coder accepted it. With
        `sending_enabled=False` the dispatcher starts paused.
        """
        self._client = client
        self._options = options
        self._metrics = metrics
        self._on_delivered = on_delivered if on_delivered is not None else _ignore_delivered
        self._senders: dict[AgentToken, Sender] = {}
        self._tasks: dict[Sender, asyncio.Task[None]] = {}

        self._paused = not sending_enabled
        # Set while requests may be made: not paused and no fatal error.
        self._sending_enabled = asyncio.Event()
        # Set when Coder returned 404 for a log route; no request is made after that.
        self._route_missing: CoderRouteNotFound | None = None
        self._failure: BaseException | None = None
        # Set on a fatal error, a crashed sender, or the end of close().
        self._stopped = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()
        self._late_lines_logged = False
        self._update_gate()

    def __repr__(self) -> str:
        return f"Dispatcher(agents={len(self._senders)}, paused={self._paused})"

    @property
    def sending_enabled(self) -> bool:
        """True while senders may make requests."""
        return self._sending_enabled.is_set()

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped delivery for good, or None."""
        return self._failure

    def agent_state(self, token: AgentToken) -> AgentState | None:
        """Return the state of the agent's sender, or None if the agent has none."""
        sender = self._senders.get(token)
        return sender.state if sender is not None else None

    def submit(self, line: LogLine) -> None:
        """Queue a line behind the earlier lines of its token, starting a sender if needed."""
        if self._closing:
            self._drop_late_line()
            return
        sender = self._senders.get(line.token)
        if sender is None:
            sender = self._start_sender(line.token)
        sender.accept(line)

    def release(self, token: AgentToken) -> None:
        """Flush the agent's lines, then end its sender and forget the agent.

        A line submitted for the token before the sender ends cancels the release.
        """
        sender = self._senders.get(token)
        if sender is not None:
            sender.release()

    def pause(self) -> None:
        """Stop making requests; lines keep queueing (bounded per agent)."""
        if not self._paused:
            log.info("sending paused", extra=fields(agents=len(self._senders)))
        self._paused = True
        self._update_gate()

    def resume(self) -> None:
        """Allow requests again; held batches are sent in order."""
        if self._paused:
            log.info("sending resumed", extra=fields(agents=len(self._senders)))
        self._paused = False
        self._update_gate()

    async def wait_until_failed(self) -> None:
        """Wait until delivery has stopped for good and raise the cause.

        Raises CoderRouteNotFound when Coder no longer serves the log route, or the
        exception of a crashed sender. Returns without raising once `close()` finished.
        """
        await self._stopped.wait()
        if self._failure is not None:
            raise self._failure

    async def close(self) -> None:
        """Stop intake, flush every agent within the shutdown timeout, cancel the rest."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            await self._flush_and_stop_senders()
        finally:
            self._closed.set()
            self._stopped.set()

    async def _flush_and_stop_senders(self) -> None:
        senders = list(self._tasks)
        for sender in senders:
            sender.release()
        tasks = list(self._tasks.values())
        # A paused or failed dispatcher can send nothing, so waiting would only delay exit.
        timeout = self._options.shutdown_timeout_seconds if self.sending_enabled else 0.0
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._log_leftovers(senders, timeout)

    def _log_leftovers(self, senders: Sequence[Sender], timeout: float) -> None:
        left = [sender for sender in senders if sender.leftover_lines]
        if not left:
            log.info("all agent queues flushed", extra=fields(agents=len(senders)))
            return
        for sender in left:
            log.debug(
                "lines not delivered before shutdown",
                extra=fields(agent=sender.agent, lines=sender.leftover_lines),
            )
        log.warning(
            "shutdown timeout passed before every queue was flushed; dropped the rest",
            extra=fields(
                agents=len(left),
                lines=sum(sender.leftover_lines for sender in left),
                timeout_s=timeout,
            ),
        )

    def _start_sender(self, token: AgentToken) -> Sender:
        sender = Sender(
            token,
            client=self._client,
            options=self._options,
            metrics=self._metrics,
            sending_enabled=self._sending_enabled,
            on_delivered=self._on_delivered,
            on_fatal=self._fail,
            on_finished=self._forget,
        )
        task = asyncio.get_running_loop().create_task(sender.run(), name=f"sender-{sender.agent}")
        task.add_done_callback(functools.partial(self._check_sender_result, sender))
        self._senders[token] = sender
        self._tasks[sender] = task
        self._metrics.agents_active.set(len(self._senders))
        return sender

    def _forget(self, sender: Sender) -> None:
        # Another sender may already serve the token if this one was replaced.
        if self._senders.get(sender.token) is sender:
            del self._senders[sender.token]
        self._metrics.agents_active.set(len(self._senders))

    def _check_sender_result(self, sender: Sender, task: asyncio.Task[None]) -> None:
        del self._tasks[sender]
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        log.error(
            "sender task crashed; its agent's held lines are lost",
            exc_info=error,
            extra=fields(agent=sender.agent),
        )
        self._record_failure(error)

    def _fail(self, error: CoderRouteNotFound) -> None:
        if self._route_missing is None:
            self._route_missing = error
            log.critical(str(error), extra=fields(agents=len(self._senders)))
            self._update_gate()
        self._record_failure(error)

    def _record_failure(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        self._stopped.set()

    def _update_gate(self) -> None:
        if self._paused or self._route_missing is not None:
            self._sending_enabled.clear()
        else:
            self._sending_enabled.set()

    def _drop_late_line(self) -> None:
        self._metrics.lines_dropped.labels(cause=DROP_SHUTDOWN).inc()
        if not self._late_lines_logged:
            self._late_lines_logged = True
            log.warning("line submitted after shutdown began; dropped it and counts later ones")


__all__ = ["AgentState", "DeliveryOptions", "Dispatcher"]
