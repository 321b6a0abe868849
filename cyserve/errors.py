"""The one exception hierarchy of cyserve.

- ``ProtocolError``: the peer sent bytes that break HTTP/1.1 (RFC 9112/9110).  It carries the status
  the server answers with (400, 413, 414, 431, 501, 505); the connection is closed afterwards.
- ``HTTPError``: raised by handlers to answer with a status, a detail and extra headers; one named
  subclass per common status (``NotFound``, ``Forbidden``, ...) and ``Abort``, Blazeio's spelling.
- ``ClientError`` and ``PushError``: the roots for the client and long-lived connections.

Programmer mistakes (a bad argument, a route registered twice) raise builtins instead.
"""
from __future__ import annotations

from typing import Iterable

__all__ = [
    "CyserveError",
    "ProtocolError",
    "HTTPError",
    "Abort",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "MethodNotAllowed",
    "NotAcceptable",
    "Conflict",
    "Gone",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "UnprocessableEntity",
    "TooManyRequests",
    "InternalServerError",
    "NotImplemented_",
    "ServiceUnavailable",
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


Headers = Iterable[tuple[str, str]] | dict[str, str] | None


class Abort(HTTPError):
    """Blazeio's spelling: ``raise Abort("no entry", 403, headers)`` (message first)."""

    def __init__(self, detail: str | None = None, status: int = 403, headers: Headers = None) -> None:
        super().__init__(status, detail, headers)


class _StatusError(HTTPError):
    status_code = 500

    def __init__(self, detail: str | None = None, headers: Headers = None) -> None:
        super().__init__(self.status_code, detail, headers)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detail!r})"


# RFC 9110 §15.5 and §15.6; each takes ``(detail=None, headers=None)``.
class BadRequest(_StatusError):
    status_code = 400


class Unauthorized(_StatusError):
    """Send ``WWW-Authenticate`` in ``headers`` (RFC 9110 §15.5.2)."""

    status_code = 401


class Forbidden(_StatusError):
    status_code = 403


class NotFound(_StatusError):
    status_code = 404


class MethodNotAllowed(_StatusError):
    """Send ``Allow`` in ``headers`` (RFC 9110 §15.5.6); the router does."""

    status_code = 405


class NotAcceptable(_StatusError):
    status_code = 406


class Conflict(_StatusError):
    status_code = 409


class Gone(_StatusError):
    status_code = 410


class PayloadTooLarge(_StatusError):
    status_code = 413


class UnsupportedMediaType(_StatusError):
    status_code = 415


class UnprocessableEntity(_StatusError):
    status_code = 422


class TooManyRequests(_StatusError):
    """Send ``Retry-After`` in ``headers`` (RFC 6585 §4)."""

    status_code = 429


class InternalServerError(_StatusError):
    status_code = 500


class NotImplemented_(_StatusError):  # the trailing _ keeps Python's NotImplemented constant visible
    status_code = 501


class ServiceUnavailable(_StatusError):
    status_code = 503


class Disconnected(CyserveError):
    """The peer closed the connection: writes to it and reads of its body stop with this."""


class ClientError(CyserveError):
    """Root of the HTTP client's errors."""


class PushError(CyserveError):
    """Root of the long-lived connection (SSE, WebSocket, TCP push) errors."""
