"""The client's branch of the one exception hierarchy (every class subclasses
``cyserve.errors.ClientError``).

- ``TransportError``: the connection failed: ``ClientTimeout`` (its five kinds each name the
  deadline that ran out, and are also builtin ``TimeoutError``), ``NetworkError`` (``ConnectError``,
  ``ReadError``, ``WriteError``), ``RemoteProtocolError`` (the server broke HTTP/1.1: malformed
  status line, bad chunking, an over-limit head, a connection closed mid-response) and
  ``ProxyError``.  A connection that raised one is discarded, never reused.
- ``TooManyRedirects``, ``HTTPStatusError`` (``raise_for_status``), ``DecodingError`` (a corrupt or
  over-limit compressed body) and ``ResponseTooLarge`` (a body past ``max_body_bytes``).
"""
from __future__ import annotations

from typing import Any

from cyserve.errors import ClientError

__all__ = [
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
]


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
