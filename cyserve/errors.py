"""The one exception hierarchy of cyserve.

- ``ProtocolError``: the peer sent bytes that break HTTP/1.1 (RFC 9112/9110).  It carries the status
  the server answers with (400, 413, 414, 431, 501, 505); the connection is closed afterwards.
- ``HTTPError``: raised by handlers to answer with a status, a detail and extra headers.
- ``ClientError`` and ``PushError``: the roots for the client and long-lived connections.

Programmer mistakes (a bad argument, a route registered twice) raise builtins instead.
"""
from __future__ import annotations

from typing import Iterable

__all__ = [
    "CyserveError",
    "ProtocolError",
    "HTTPError",
    "Disconnected",
    "ClientError",
    "PushError",
]


class CyserveError(Exception):
    """Root of every exception cyserve raises on purpose."""


class ProtocolError(CyserveError):
    """The peer violated HTTP/1.1; ``status`` is the answer a server gives before closing."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    def __repr__(self) -> str:
        return f"ProtocolError({self.args[0]!r}, status={self.status})"


class HTTPError(CyserveError):
    """Raised by a handler to answer ``status`` with ``detail`` and extra ``headers``."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be 4xx or 5xx, got {status}")
        super().__init__(detail or "")
        self.status = status
        self.detail = detail
        self.headers = list(headers.items()) if isinstance(headers, dict) else list(headers or ())

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.detail!r})"


class Disconnected(CyserveError):
    """The peer closed the connection: writes to it and reads of its body stop with this."""


class ClientError(CyserveError):
    """Root of the HTTP client's errors."""


class PushError(CyserveError):
    """Root of the long-lived connection (SSE, WebSocket, TCP push) errors."""
