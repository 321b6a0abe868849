"""The HTTP/1.1 client role on a ``Stream``: one exchange at a time."""
import asyncio
from typing import Any, Iterable

from cyserve._core.http.head import Head
from cyserve._core.http.state import ClientState
from cyserve._core.io.stream import Stream, StreamProtocol

Fields = Iterable[tuple[str | bytes, str | bytes]] | None

class ClientRole:
    stream: Stream
    origin: Any
    listener: Any
    exchanges: int
    response_bytes: int
    idle_since: float
    def start(self, method: str, target: str, fields: Fields, content_length: int = ...,
              chunked: bool = ..., body: bytes | None = ..., close: bool = ...,
              head_request: bool = ..., read_s: float = ..., write_s: float = ...,
              total_s: float = ..., upgrade: bool = ...) -> asyncio.Future[tuple[Head, Any] | None]:
        """Send a request head (and ``body`` when given); return the future of its response.

        The future resolves with ``(head, body)`` — ``body`` is ``bytes`` when the whole body was
        already here, else a ``BodyStream`` — or with None after a failure (see ``error``).
        ``content_length`` >= 0 sends Content-Length (the body then is ``body`` or follows through
        ``send_body``); ``chunked`` sends Transfer-Encoding: chunked.  ``head_request``: the
        response carries no body (HEAD, CONNECT).  ``upgrade``: the request asks to switch
        protocols, so a 101 resolves the future with ``(head, None)`` and leaves the bytes after it
        unread for the next role.  Deadlines are seconds, 0 for none.
        """
    async def send_body(self, data: bytes) -> None:
        """Send the next piece of the request body (framed as the head said) and wait while the
        transport is above its high water mark (``write_s`` bounds that wait)."""
    def end_body(self) -> None:
        """The request body is complete: send the last chunk, start the read deadline."""
    def stop_body(self) -> None:
        """Stop sending the request body because a final response already arrived (RFC 9110
        §15); the connection closes once that response has been received."""
    async def drain(self) -> None:
        """Wait while writing is paused; raise the connection's error if it failed meanwhile."""
    def abort(self, exc: BaseException | None = ...) -> None:
        """Give up on this connection (the caller cancelled or stopped reading): close it now."""
    def close(self) -> None:
        """Close an idle connection (pool shutdown, eviction)."""
    def set_transport(self, transport: asyncio.BaseTransport) -> None:
        """Switch to a new transport over the same socket (TLS started inside a proxy tunnel)."""
    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def error(self) -> BaseException | None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def is_reusable(self) -> bool: ...
    @property
    def request_open(self) -> bool: ...
    @property
    def write_paused(self) -> bool: ...
    @property
    def reading_paused(self) -> bool: ...
    @property
    def response_complete(self) -> bool: ...

def client_connection(state: ClientState, origin: Any = ...) -> StreamProtocol:
    """A new client connection for ``loop.create_connection``; its role is ``stream.role``."""
