"""HTTP/1.1 client connection: the client role of the core's codec (``cyserve._core.client``).

Requests are serialised with the writer's field validation (``reqhead``: no CR/LF/NUL, token
names; framing fields decided there) and sent by the writing half (``reqsender``); responses are
cut by ``HeadScanner(response_mode=True)``, parsed by ``parse_response`` and framed into bytes or a
``BodyStream`` whose reads resume the socket below its low water mark by the reading half
(``respreader``).  ``cyserve.client`` is the public API built on this; use this module directly
only to drive a connection by hand.  ``ClientState`` and ``serialise_request`` are re-exported.
"""
import asyncio
from typing import Any, Iterable

from cyserve._core.http.body import BodyStream
from cyserve._core.clientstate import ClientState as ClientState
from cyserve._core.http.parser import Head
from cyserve._core.http.serialise import serialise_request as serialise_request
from cyserve._core.respreader import ResponseReader

Fields = Iterable[tuple[str | bytes, str | bytes]] | None

def monotonic() -> float:
    """The clock every client deadline is measured on (CLOCK_MONOTONIC, seconds)."""

class HTTPClientCore(ResponseReader):
    """One client connection, one exchange at a time.  The loop sees a Python subclass mixing in
    ``asyncio.BufferedProtocol`` (``cyserve.client.connect.ClientConnection``).

    After a failure (``error`` is set) the connection is aborted and never reused.  The listener
    (the pool) hears ``connection_released(conn)`` when an exchange ended cleanly with keep-alive
    and ``connection_closed(conn)`` when the connection closes (at once, not when the loop says).
    """

    origin: Any
    listener: Any
    closed: bool
    exchanges: int
    idle_since: float
    def __init__(self, state: ClientState, origin: Any = ...) -> None: ...
    # asyncio protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
    def eof_received(self) -> bool: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def set_transport(self, transport: asyncio.Transport) -> None:
        """Continue on a new transport over the same socket (TLS inside a CONNECT tunnel)."""
    # one exchange
    def start(self, method: str, target: str, fields: Fields, content_length: int = ...,
              chunked: bool = ..., body: bytes | None = ..., close: bool = ...,
              head_request: bool = ..., read_s: float = ..., write_s: float = ...,
              total_s: float = ...) -> asyncio.Future[tuple[Head, bytes | BodyStream] | None]:
        """Send the head (and ``body`` if given); the future resolves with ``(head, body)`` once
        the final response head arrives (1xx are skipped; ``body`` is ``bytes`` when it was
        already complete, else a ``BodyStream``), or with ``None`` on failure (see ``error``).
        Deadlines in seconds, 0 for none: ``read_s`` (silence while response bytes are due, not
        counted while our own reader holds back), ``write_s`` (a paused transport), ``total_s``."""
    def abort(self, exc: BaseException | None = ...) -> None:
        """Give the exchange up: abort the transport; every waiter wakes with the error."""
    def close(self) -> None:
        """Close an idle connection gracefully."""
    @property
    def error(self) -> BaseException | None:
        """Why the connection failed (a ``cyserve.errors.ClientError``), else None."""
    @property
    def is_reusable(self) -> bool:
        """Idle, open, not half-closed by the server, nothing unsolicited received."""
