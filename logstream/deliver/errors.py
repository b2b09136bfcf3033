"""Exceptions of the Coder client, the only ones that leave `deliver/coder.py`.

The client translates every httpx exception and every unexpected status into one of these
types, so senders decide what to do (retry, wait, drop, stop) from the type and the
status alone. Messages name the server URL, the route and, where one is involved, the
agent fingerprint. They never contain a token.
"""

from __future__ import annotations


class CoderError(Exception):
    """Base of every error the Coder client raises."""


class CoderConnectionError(CoderError):
    """The request failed before a response arrived: connect, TLS, timeout or reset.

    The request may or may not have reached Coder, so sending it again can store the
    lines twice. Senders retry it with backoff.
    """


class CoderStatusError(CoderError):
    """Coder responded with a status other than the route's success status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        server_message: str = "",
        detail: str = "",
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        # The `message` and `detail` fields of Coder's JSON error body, empty when absent.
        self.server_message = server_message
        self.detail = detail
        # From the `Retry-After` header of a 429 or 503, already converted to seconds.
        self.retry_after_seconds = retry_after_seconds


class CoderRouteNotFound(CoderError):
    """Coder returned 404 for an agent log route, so this server cannot take our logs.

    Retrying cannot help: the server version in the message has to change, or this
    controller has to learn another transport.
    """


class NotCoderServerError(CoderError):
    """The configured URL did not respond to `GET /api/v2/buildinfo` the way Coder does."""
