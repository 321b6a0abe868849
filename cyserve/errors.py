"""The one exception hierarchy of cyserve.

- ``ProtocolError``: the peer sent bytes that break HTTP/1.1 (RFC 9112/9110).  It carries the status
  the server answers with (400, 413, 414, 431, 501, 505); the connection is closed afterwards.
- ``HTTPError``: raised by handlers to answer with a status, a detail and extra headers; one named
  subclass per common status (``NotFound``, ``Forbidden``, ...) and ``Abort``, Blazeio's spelling.
- ``ClientError``: the HTTP client's branch.  ``TransportError``: the connection failed:
  ``ClientTimeout`` (its five kinds each name the deadline that ran out, and are also builtin
  ``TimeoutError``), ``NetworkError`` (``ConnectError``, ``ReadError``, ``WriteError``),
  ``RemoteProtocolError`` (the server broke HTTP/1.1: malformed status line, bad chunking, an
  over-limit head, a connection closed mid-response) and ``ProxyError``; a connection that raised
  one is discarded, never reused.  ``TooManyRedirects``, ``HTTPStatusError``
  (``raise_for_status``), ``DecodingError`` (a corrupt or over-limit compressed body) and
  ``ResponseTooLarge`` (a body past ``max_body_bytes``).
- ``WebSocketError``: a WebSocket ended or failed, with its close code (RFC 6455 §7.4);
  ``WebSocketDisconnect(code, reason)``: the connection closed (by the peer, a limit, a missed
  pong or shutdown), raised from ``receive*`` and from ``send`` on a closed socket.
- ``PushError``: the root for long-lived push connections.

Programmer mistakes (a bad argument, a route registered twice) raise builtins instead.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

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
    "ClientDisconnected",
    "ClientError",
    "TransportError",
    "ClientTimeout",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "TotalTimeout",
    "NetworkError",
    "ConnectError",
    "ReadError",
    "WriteError",
    "RemoteProtocolError",
    "ProxyError",
    "TooManyRedirects",
    "HTTPStatusError",
    "DecodingError",
    "ResponseTooLarge",
    "WebSocketError",
    "WebSocketDisconnect",
    "PushError",
    "PushDenied",
    "PushClosed",
    "PushRefused",
    "PushCallError",
    "BrokerUnavailable",
    "StartupError",
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


class ClientDisconnected(Disconnected, OSError):
    """The client left while an ASGI app was still sending: raised by ``send()``, an ``OSError``
    as the ASGI spec (2.4) asks, and a ``Disconnected`` as the rest of cyserve says it."""


class ClientError(CyserveError):
    """Root of the HTTP client's errors."""


class TransportError(ClientError):
    """The connection could not carry the exchange; it is closed and never reused."""


class ClientTimeout(TransportError, TimeoutError):
    """A deadline ran out; the subclass says which one."""


class ConnectTimeout(ClientTimeout):
    """Opening the connection (TCP, TLS handshake, proxy CONNECT) took longer than ``connect_s``."""


class ReadTimeout(ClientTimeout):
    """No byte of the response arrived for ``read_s`` while one was expected."""


class WriteTimeout(ClientTimeout):
    """The server did not accept request bytes for ``write_s`` (the send buffer stayed full)."""


class PoolTimeout(ClientTimeout):
    """No connection of the pool became free within ``pool_s``."""


class TotalTimeout(ClientTimeout):
    """The whole request (pool, connect, send, receive) took longer than ``total_s``."""


class NetworkError(TransportError):
    """The operating system reported a socket error."""


class ConnectError(NetworkError):
    """The connection could not be opened (refused, unreachable, TLS verification failed)."""


class ReadError(NetworkError):
    """The connection broke while the response was being received."""


class WriteError(NetworkError):
    """The connection broke while the request was being sent."""


class RemoteProtocolError(TransportError):
    """The server violated HTTP/1.1 or closed the connection before a complete response."""


class ProxyError(TransportError):
    """The proxy refused or failed the CONNECT tunnel."""


class TooManyRedirects(ClientError):
    """More redirects than ``max_redirects``; ``response`` is the last one received."""

    def __init__(self, message: str, response: Any = None) -> None:
        super().__init__(message)
        self.response = response


class HTTPStatusError(ClientError):
    """``raise_for_status()`` on a 4xx or 5xx response; ``response`` and ``status`` say which."""

    def __init__(self, message: str, response: Any) -> None:
        super().__init__(message)
        self.response = response
        self.status: int = response.status


class DecodingError(ClientError):
    """A compressed body was corrupt, or decoded past ``max_decoded_bytes`` (a bomb)."""


class ResponseTooLarge(ClientError):
    """``read()`` would buffer more than ``max_body_bytes`` of body."""


class WebSocketError(CyserveError):
    """A WebSocket failed; ``code`` is the close code (RFC 6455 §7.4.1) it ended, or ends, with."""

    def __init__(self, code: int = 1011, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed with {self.code}" + (f": {self.reason}" if self.reason else "")


class WebSocketDisconnect(WebSocketError):
    """The WebSocket is closed: ``code`` and ``reason`` are what closed it (1005 when the peer's
    close frame had no code, 1006 when the connection dropped without one)."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)


class PushError(CyserveError):
    """Root of the long-lived connection (SSE, WebSocket, TCP push) errors."""


class PushDenied(PushError):
    """Raised by a push hub's ``on_connect`` hook to refuse a client (REFUSE ``unauthorized``),
    or by a command handler to answer its CALL with ERROR ``code`` (default ``denied``) and
    ``text`` — the only exception whose words reach the client."""

    def __init__(self, text: str = "", code: str = "") -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class PushClosed(PushError):
    """A push connection or session is closed: ``code`` is the close code (docs/push-protocol.md
    §9), ``text`` the peer's words.  Raised by a client's ``call``/iteration once it gave up, and
    by the hub for a client that is gone."""

    def __init__(self, code: str = "going_away", text: str = "") -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return f"push connection closed: {self.code}" + (f" ({self.text})" if self.text else "")


class PushRefused(PushError):
    """The server refused the client's HELLO (REFUSE ``code``: ``unauthorized``, ``server_full``...)."""

    def __init__(self, code: str, text: str = "") -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return f"push server refused the connection: {self.code}" + (f" ({self.text})" if self.text else "")


class PushCallError(PushError):
    """A CALL was answered with ERROR ``code`` (``unknown_command``, ``bad_payload``,
    ``handler_error`` or the application's own) and ``text``."""

    def __init__(self, code: str, text: str = "") -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return f"push call failed: {self.code}" + (f" ({self.text})" if self.text else "")


class BrokerUnavailable(PushError):
    """A message could not be handed to the broker (Redis unreachable past the publish buffer's
    bound or its wait): it was not sent, and says so rather than being dropped."""


class StartupError(CyserveError):
    """The server could not start: the app did not import, the address could not be bound, a
    startup hook raised, a TLS file was bad.  The message is one line naming the cause; the CLI
    prints it and exits with status 3 (a supervisor does not respawn such a worker)."""


def again(exc: BaseException) -> BaseException:
    """A copy of a stored failure, to raise once more.

    A connection keeps the error it failed with and raises it on every later call.  Raising the
    stored object itself would hang each caller's traceback on it: frames that hold the
    connection (or the request whose body it is), so connection -> error -> traceback -> frame
    -> connection would be a cycle only the cyclic GC frees, and a server under resets would hold
    thousands of dead connections and their buffers between collections."""
    fresh = copy.copy(exc)
    fresh.__cause__ = exc.__cause__
    fresh.__suppress_context__ = exc.__suppress_context__
    return fresh
