"""One agent's sender: the task that moves that agent's lines from its buffer to Coder.

The dispatcher creates one `Sender` per agent token and runs `Sender.run()` as its own
task. Other code reaches a sender only through `accept()` and `release()`. Senders share
no state except the `sending_enabled` event, which they only read, so a slow or failing
agent never delays another.

Guarantees:
* Lines reach Coder in the order they were accepted. A batch is retried whole until it is
  accepted or given up on, and the next batch is cut only after that.
* The log source is registered once, before the agent's first PATCH.
* Transient failures (connection errors, timeouts, 5xx, 408) are retried forever with
  full-jitter exponential backoff. A 429 or 503 waits for its `Retry-After`.
* A 401 is retried for `unauthorized_window_seconds` from the first 401 of a streak,
  because Coder rejects a token until the workspace build finishes provisioning. After
  that the sender drops what it holds and every later line until it is released.
* A 413 drops the batch and every later line (Coder's log budget for the agent is
  spent). A 400 or another 4xx drops only the batch. Each drop is logged and counted.
* Delivery is at least once. A request that times out after Coder stored it is sent
  again, so that batch can show up twice.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from logstream.config import Settings
from logstream.deliver.batching import LineBuffer
from logstream.deliver.errors import (
    CoderError,
    CoderRouteNotFound,
    CoderStatusError,
)
from logstream.lines import AgentToken, LogLine, fingerprint
from logstream.ops.logs import fields
from logstream.ops.metrics import (
    DROP_BUFFER_FULL,
    DROP_OVERFLOW,
    DROP_REJECTED,
    DROP_SHUTDOWN,
    DROP_UNAUTHORIZED,
    Metrics,
)

log = logging.getLogger("logstream.deliver")

# First backoff step; attempt n waits a random time in [0, min(cap, base * 2**(n-1))].
RETRY_BASE_SECONDS = 0.5
# Upper bound of the wait between two tries of a token that returns 401, kept short so
# that lines appear soon after the workspace build finishes provisioning.
UNAUTHORIZED_RETRY_MAX_SECONDS = 5.0
# Beyond this exponent the backoff is at its cap anyway; bounding it avoids float overflow.
_MAX_BACKOFF_EXPONENT = 30


class AgentState(enum.Enum):
    """The way a sender treats the lines it accepts: send them, or drop them and why."""

    SENDING = "sending"
    # Coder rejected the token for the whole unauthorized window: lines are dropped.
    UNAUTHORIZED = "unauthorized"
    # Coder returned 413 because the agent's log budget is spent: lines are dropped.
    OVERFLOWED = "overflowed"


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Delivery tuning; every field mirrors the `Settings` field of the same name."""

    batch_window_seconds: float
    batch_max_lines: int
    batch_max_bytes: int
    queue_max_lines: int
    unauthorized_window_seconds: float
    retry_max_seconds: float
    shutdown_timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryOptions:
        """Copy the delivery fields out of the controller settings."""
        return cls(
            batch_window_seconds=settings.batch_window_seconds,
            batch_max_lines=settings.batch_max_lines,
            batch_max_bytes=settings.batch_max_bytes,
            queue_max_lines=settings.queue_max_lines,
            unauthorized_window_seconds=settings.unauthorized_window_seconds,
            retry_max_seconds=settings.retry_max_seconds,
            shutdown_timeout_seconds=settings.shutdown_timeout_seconds,
        )


class LogClient(Protocol):
    """The two Coder calls a sender makes; `CoderClient` implements them."""

    async def register_log_source(self, token: AgentToken) -> None:
        """Create the log source for the agent."""

    async def patch_logs(self, token: AgentToken, lines: Sequence[LogLine]) -> None:
        """Append lines to the agent's startup log."""


class DeliveredCallback(Protocol):
    """Called with each batch right after Coder accepted it, in delivery order."""

    def __call__(self, lines: Sequence[LogLine]) -> None: ...


class FatalErrorCallback(Protocol):
    """Called when a sender meets an error that stops delivery for every agent."""

    def __call__(self, error: CoderRouteNotFound) -> None: ...


class FinishedCallback(Protocol):
    """Called once when a sender's task ends, before its last await returns."""

    def __call__(self, sender: Sender) -> None: ...


class Sender:
    """The owner of one agent's buffer, which it delivers by the rules in the module docstring."""

    def __init__(
        self,
        token: AgentToken,
        *,
        client: LogClient,
        options: DeliveryOptions,
        metrics: Metrics,
        sending_enabled: asyncio.Event,
        on_delivered: DeliveredCallback,
        on_fatal: FatalErrorCallback,
        on_finished: FinishedCallback,
    ) -> None:
        self.token = token
        self.agent = fingerprint(token)
        self._client = client
        self._options = options
        self._metrics = metrics
        self._sending_enabled = sending_enabled
        self._on_delivered = on_delivered
        self._on_fatal = on_fatal
        self._on_finished = on_finished

        self._buffer = LineBuffer(max_lines=options.queue_max_lines)
        self._in_flight: list[LogLine] = []
        self._wakeup = asyncio.Event()
        self._released = False
        self._state = AgentState.SENDING
        self._source_registered = False
        # Monotonic time of the first 401 of the current streak, None outside a streak.
        self._unauthorized_since: float | None = None
        self.leftover_lines = 0

    def __repr__(self) -> str:
        return f"Sender(agent={self.agent!r}, state={self._state.value}, held={self.held_lines})"

    @property
    def state(self) -> AgentState:
        """The sender's current treatment of new lines."""
        return self._state

    @property
    def held_lines(self) -> int:
        """Lines accepted and not yet delivered or dropped, the batch in flight included."""
        return len(self._buffer) + len(self._in_flight)

    def accept(self, line: LogLine) -> None:
        """Queue a line behind the earlier ones, or count it as dropped if the agent is."""
        # A line after `release()` means the token is in use again: keep the sender.
        self._released = False
        if self._state is AgentState.UNAUTHORIZED:
            self._metrics.lines_dropped.labels(cause=DROP_UNAUTHORIZED).inc()
            return
        if self._state is AgentState.OVERFLOWED:
            self._metrics.lines_dropped.labels(cause=DROP_OVERFLOW).inc()
            return

        if self._buffer.append(line, now=time.monotonic()):
            self._count_buffer_drop()
        else:
            self._metrics.queue_depth.inc()
        self._wakeup.set()

    def release(self) -> None:
        """Send what is held without waiting for the batch window, then end the task."""
        self._released = True
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver batches until released with nothing left; the dispatcher runs this."""
        log.info("sender started", extra=fields(agent=self.agent))
        cancelled = False
        try:
            while True:
                batch = await self._next_batch()
                if batch is None:
                    return
                await self._deliver(batch)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            self._discard_held(cancelled=cancelled)
            self._on_finished(self)
            log.info(
                "sender stopped",
                extra=fields(agent=self.agent, state=self._state.value, lost=self.leftover_lines),
            )

    async def _next_batch(self) -> list[LogLine] | None:
        """Wait for the next batch: at the cap, when the window ends, or at release."""
        while True:
            if not self._buffer:
                if self._released:
                    return None
                await self._wait_for_wakeup(timeout=None)
                continue

            ready_in = self._seconds_until_batch_ready()
            if ready_in <= 0:
                return self._take_batch()
            await self._wait_for_wakeup(timeout=ready_in)

    def _seconds_until_batch_ready(self) -> float:
        options = self._options
        if self._released or self._buffer.has_full_batch(
            max_lines=options.batch_max_lines, max_bytes=options.batch_max_bytes
        ):
            return 0.0
        oldest = self._buffer.oldest_appended_at
        assert oldest is not None  # the caller checked that the buffer is not empty
        return oldest + options.batch_window_seconds - time.monotonic()

    async def _wait_for_wakeup(self, *, timeout: float | None) -> None:
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass

    def _take_batch(self) -> list[LogLine]:
        notice_pending = self._buffer.dropped_before_head > 0
        batch = self._buffer.take_batch(
            max_lines=self._options.batch_max_lines, max_bytes=self._options.batch_max_bytes
        )
        if notice_pending:
            # The "lines dropped" notice is held and counted like any other line.
            self._metrics.queue_depth.inc()
        return batch

    async def _deliver(self, batch: list[LogLine]) -> None:
        """Try the batch until it is delivered or dropped; hold it while sending is paused."""
        self._in_flight = batch
        attempt = 0
        while self._in_flight:
            await self._sending_enabled.wait()
            attempt += 1
            delay = await self._attempt(batch, attempt)
            if delay is not None:
                await asyncio.sleep(delay)

    async def _attempt(self, batch: list[LogLine], attempt: int) -> float | None:
        """Send the batch once; return the delay before the next try, None when done."""
        try:
            await self._send(batch)
        except CoderRouteNotFound as error:
            # The dispatcher closes the `sending_enabled` gate; the batch stays held.
            self._on_fatal(error)
            return 0.0
        except CoderStatusError as error:
            return self._handle_status(error, batch, attempt)
        except CoderError as error:
            return self._retry_delay(error, attempt, retry_after=None)
        self._finish_delivered(batch, attempt)
        return None

    async def _send(self, batch: list[LogLine]) -> None:
        if not self._source_registered:
            await self._client.register_log_source(self.token)
            self._source_registered = True
            self._unauthorized_since = None
        await self._client.patch_logs(self.token, batch)

    def _handle_status(
        self, error: CoderStatusError, batch: list[LogLine], attempt: int
    ) -> float | None:
        status = error.status
        if status == 401:
            return self._handle_unauthorized(error, batch, attempt)
        if status == 413:
            self._give_up(batch, error, state=AgentState.OVERFLOWED)
            return None
        if status == 429 or status == 503:
            return self._retry_delay(error, attempt, retry_after=error.retry_after_seconds)
        if status >= 500 or status == 408:
            return self._retry_delay(error, attempt, retry_after=None)
        self._reject(batch, error)
        return None

    def _handle_unauthorized(
        self, error: CoderStatusError, batch: list[LogLine], attempt: int
    ) -> float | None:
        now = time.monotonic()
        window = self._options.unauthorized_window_seconds
        if self._unauthorized_since is None:
            self._unauthorized_since = now
            log.info(
                "Coder does not accept the agent token yet; holding its lines while the "
                "workspace build provisions",
                extra=fields(agent=self.agent, window_s=window, message=error.server_message),
            )

        remaining = self._unauthorized_since + window - now
        if remaining <= 0:
            self._give_up(batch, error, state=AgentState.UNAUTHORIZED)
            return None
        cap = min(self._options.retry_max_seconds, UNAUTHORIZED_RETRY_MAX_SECONDS)
        # Never sleep past the end of the window: the last try happens right at its end.
        delay = min(self._backoff_seconds(attempt, cap=cap), remaining)
        log.debug(
            "token still rejected with 401; trying again",
            extra=fields(agent=self.agent, attempt=attempt, delay_s=round(delay, 3)),
        )
        return delay

    def _retry_delay(
        self, error: CoderError, attempt: int, *, retry_after: float | None
    ) -> float:
        if retry_after is not None:
            delay = retry_after
        else:
            delay = self._backoff_seconds(attempt, cap=self._options.retry_max_seconds)
        # Powers of two only: an outage of hours logs a few dozen warnings per agent.
        level = logging.WARNING if attempt & (attempt - 1) == 0 else logging.DEBUG
        log.log(
            level,
            "sending a batch failed; trying again (no attempt limit)",
            extra=fields(
                agent=self.agent,
                attempt=attempt,
                delay_s=round(delay, 3),
                retry_after_s=retry_after,
                error=str(error),
            ),
        )
        return delay

    def _backoff_seconds(self, attempt: int, *, cap: float) -> float:
        exponent = min(attempt - 1, _MAX_BACKOFF_EXPONENT)
        return random.uniform(0, min(cap, RETRY_BASE_SECONDS * 2**exponent))

    def _finish_delivered(self, batch: list[LogLine], attempt: int) -> None:
        self._in_flight = []
        self._unauthorized_since = None
        self._metrics.lines_sent.inc(len(batch))
        self._metrics.queue_depth.dec(len(batch))
        if attempt > 1:
            log.info(
                "batch delivered after retries",
                extra=fields(agent=self.agent, attempt=attempt, lines=len(batch)),
            )
        try:
            self._on_delivered(batch)
        except Exception:
            log.exception("delivered-lines callback failed", extra=fields(agent=self.agent))

    def _reject(self, batch: list[LogLine], error: CoderStatusError) -> None:
        self._in_flight = []
        self._count_dropped(len(batch), DROP_REJECTED)
        log.error(
            "Coder rejected a batch; dropped it and kept sending later lines",
            extra=fields(
                agent=self.agent,
                status=error.status,
                lines=len(batch),
                message=error.server_message,
                detail=error.detail,
            ),
        )

    def _give_up(self, batch: list[LogLine], error: CoderStatusError, *, state: AgentState) -> None:
        """Drop the batch and everything buffered, and drop later lines until release."""
        dropped = len(batch) + len(self._buffer)
        self._in_flight = []
        self._buffer.take_all()
        self._state = state
        if state is AgentState.UNAUTHORIZED:
            cause = DROP_UNAUTHORIZED
            reason = (
                f"Coder still rejected the agent token after "
                f"{self._options.unauthorized_window_seconds:g} s of 401 responses, so its "
                "workspace build is most likely stopped or deleted"
            )
        else:
            cause = DROP_OVERFLOW
            reason = "Coder returned 413 because the agent's log budget is spent"
        self._count_dropped(dropped, cause)
        log.error(
            f"{reason}; dropped the held lines, and later lines for this agent are dropped "
            "until the objects that carry its token are gone",
            extra=fields(
                agent=self.agent, status=error.status, dropped=dropped, message=error.server_message
            ),
        )

    def _count_dropped(self, count: int, cause: str) -> None:
        self._metrics.lines_dropped.labels(cause=cause).inc(count)
        self._metrics.queue_depth.dec(count)

    def _count_buffer_drop(self) -> None:
        self._metrics.lines_dropped.labels(cause=DROP_BUFFER_FULL).inc()
        if self._buffer.dropped_before_head == 1:
            log.warning(
                "the queue for this agent is full; dropping its oldest lines, and a line "
                "in their place will say how many",
                extra=fields(agent=self.agent, queue_max_lines=self._options.queue_max_lines),
            )

    def _discard_held(self, *, cancelled: bool) -> None:
        """Account for lines still held when the task ends; lost only if it was cancelled."""
        self.leftover_lines = self.held_lines
        self._in_flight = []
        self._buffer.take_all()
        if self.leftover_lines == 0:
            return
        if cancelled:
            self._count_dropped(self.leftover_lines, DROP_SHUTDOWN)
        else:
            self._metrics.queue_depth.dec(self.leftover_lines)
