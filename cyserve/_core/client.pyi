"""HTTP/1.1 client connection: the client role of the core's codec (``cyserve._core.client``).

Requests are serialised with the writer's field validation (no CR/LF/NUL, token names; framing
fields decided here), responses are cut by ``HeadScanner(response_mode=True)`` and parsed by
``parse_response``, chunked bodies go through ``ChunkedDecoder``, and a streamed response body is
a ``BodyStream`` whose reads resume the socket below its low water mark.  ``cyserve.client`` is
the public API built on this; use this module directly only to drive a connection by hand.
"""
import asyncio
from typing import Any, Awaitable, Iterable

from cyserve._core.body import BodyStream
from cyserve._core.parser import Head

Fields = Iterable[tuple[str | bytes, str | bytes]] | None

def monotonic() -> float:
    """The clock every client deadline is measured on (CLOCK_MONOTONIC, seconds)."""

def serialise_request(method: str, target: str, fields: Fields = ..., content_length: int = ...,
                      chunked: bool = ..., close: bool = ..., body: bytes | None = ...) -> bytes:
    """``METHOD SP target SP HTTP/1.1``, the fields, then the framing field (Content-Length when
    ``content_length >= 0``, Transfer-Encoding: chunked when ``chunked``) and, when ``close`` or a
    caller's ``Connection: close``, Connection: close.  The caller's own Content-Length,
    Transfer-Encoding and Connection fields are dropped (framing is decided in one place).
    ``body`` is appended when at most 16 KiB.  ValueError for a non-token method, a target with
    whitespace, controls or non-ASCII (RFC 9112 §3.2), and any field the writer refuses."""

class ClientState:
    """Shared by the connections of one ``Client``: limits and water marks in C fields."""

    loop: asyncio.AbstractEventLoop
    keepalive_s: float
    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_head_bytes: int = 65536,
                 max_header_count: int = 100, max_trailer_bytes: int = 8192,
                 read_high: int = 262144, read_low: int = 65536, write_high: int = 262144,
                 write_low: int = 65536, keepalive_s: float = 5.0, read_chunk: int = 65536) -> None:
        """``read_high``/``read_low``: unread streamed body at which reading pauses/resumes;
        ``write_*``: the transport's write water marks; ``keepalive_s``: an idle connection
        closes after this (0: never); ``read_chunk``: free bytes offered to each socket read."""

class HTTPClientCore:
    """One client connection, one exchange at a time.  The loop sees a Python subclass mixing in
    ``asyncio.BufferedProtocol`` (``cyserve._client.connect.ClientConnection``).

    After a failure (``error`` is set) the connection is aborted and never reused.  The listener
    (the pool) hears ``connection_released(conn)`` when an exchange ended cleanly with keep-alive
    and ``connection_closed(conn)`` when the connection closes (at once, not when the loop says).
    """

    transport: asyncio.Transport | None
    origin: Any
    listener: Any
    closed: bool
    response_bytes: int
    exchanges: int
    idle_since: float
    def __init__(self, state: ClientState, origin: Any = ...) -> None: ...
    # asyncio protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
    def get_buffer(self, sizehint: int) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def eof_received(self) -> bool: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
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
    def send_body(self, data: bytes) -> Awaitable[None]:
        """Send the next piece of the body, framed as the head said; waits while the transport
        is above its high water mark.  Raises the connection's error once it failed."""
    def drain(self) -> Awaitable[None]:
        """Wait while writing is paused (bounded by ``write_s``)."""
    def end_body(self) -> None:
        """The body is complete (last chunk for chunked); ValueError if a Content-Length body
        came up short (the connection is then aborted)."""
    def stop_body(self) -> None:
        """Stop sending the body after an early final response; the connection then closes
        once that response is received (its request framing is unfinished)."""
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
    @property
    def request_open(self) -> bool: ...
    @property
    def write_paused(self) -> bool: ...
    @property
    def reading_paused(self) -> bool:
        """Reading is paused because the streamed body's reader is behind."""
    @property
    def response_complete(self) -> bool: ...
