"""The HTTP/1.1 server role on a ``Stream``; what the app sees as ``conn``."""
import asyncio
from typing import Any, Awaitable, Callable, Iterable

from cyserve._core.http.state import ServerState
from cyserve._core.io.stream import Stream, StreamProtocol

Fields = Iterable[tuple[str | bytes, str | bytes]] | None

class ServerRole:
    """One connection's requests and responses."""

    stream: Stream
    def respond(self, status: int, fields: Fields, body: bytes, content_type: str | None = ...) -> None:
        """Send a whole response (head and small body in one write)."""
    def start_stream(self, status: int, fields: Fields = ..., content_type: str | None = ...,
                     content_length: int = ...) -> None:
        """Send a streamed response's head: chunked on HTTP/1.1 unless a length is given."""
    def write(self, data: bytes) -> Awaitable[None]:
        """Send part of a streamed body; await the result for backpressure."""
    def end_stream(self) -> None:
        """Finish a streamed body."""
    def drain(self) -> Awaitable[None]:
        """Wait while the transport is above its high water mark (no future unless paused)."""
    def upgrade(self, protocol: str, fields: Fields, take_over: Callable[[Stream], None]) -> None:
        """Write 101 Switching Protocols and hand the stream to the role ``take_over`` attaches."""
    @property
    def response_started(self) -> bool: ...
    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def peername(self) -> Any: ...
    @property
    def sockname(self) -> Any: ...
    @property
    def reading_paused(self) -> bool: ...
    @property
    def requests_served(self) -> int: ...
    def is_disconnected(self) -> bool: ...
    def wait_disconnected(self) -> asyncio.Future[None]: ...

def server_connection(state: ServerState) -> StreamProtocol:
    """A new server connection (the listener's protocol factory)."""
