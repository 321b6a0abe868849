"""The HTTP/1.1 server connection and the state shared by one server's connections."""
import asyncio
from typing import Any, Awaitable, Callable, Iterable

from cyserve.config import ServerConfig

Fields = Iterable[tuple[str | bytes, str | bytes]] | None

class ServerState:
    """Configuration (copied into C fields), the app entry point and the live connections."""

    entry: Callable[[HTTPServerCore, Any, Any], Awaitable[None]]
    loop: asyncio.AbstractEventLoop
    connections: set[HTTPServerCore]
    shutting_down: bool
    def __init__(self, entry: Callable[..., Awaitable[None]], config: ServerConfig,
                 loop: asyncio.AbstractEventLoop | None = ...) -> None: ...
    def begin_shutdown(self) -> None:
        """Close idle connections now; busy ones close after their current response."""
    async def wait_closed(self) -> None:
        """Return once every connection is gone."""
    def abort_all(self) -> None:
        """Cancel running handlers and drop every connection."""

class HTTPServerCore:
    """One connection.  The loop sees a Python subclass mixing in ``asyncio.BufferedProtocol``."""

    transport: asyncio.Transport | None
    peername: Any
    sockname: Any
    def __init__(self, state: ServerState) -> None: ...
    # asyncio protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
    def get_buffer(self, sizehint: int) -> Any: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def eof_received(self) -> bool | None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    # response API used by the App
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
    @property
    def response_started(self) -> bool: ...
    @property
    def reading_paused(self) -> bool: ...
    @property
    def requests_served(self) -> int: ...
    def is_disconnected(self) -> bool: ...
    def wait_disconnected(self) -> asyncio.Future[None]: ...
