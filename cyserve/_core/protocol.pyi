"""The HTTP/1.1 server connection and the state shared by one server's connections."""
import asyncio
from typing import Any, Awaitable, Callable

from cyserve._core.sender import Sender
from cyserve.config import ServerConfig

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

class HTTPServerCore(Sender):
    """One connection: the request side over the response API of ``Sender``.

    The loop sees a Python subclass mixing in ``asyncio.BufferedProtocol``.
    """

    peername: Any
    sockname: Any
    def __init__(self, state: ServerState) -> None: ...
    # asyncio protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
    def get_buffer(self, sizehint: int) -> Any: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def eof_received(self) -> bool | None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    @property
    def reading_paused(self) -> bool:
        """True while reading is paused for backpressure (body or pipeline water marks)."""
    @property
    def requests_served(self) -> int: ...
    def is_disconnected(self) -> bool:
        """True once the client closed (or half-closed) the connection."""
    def wait_disconnected(self) -> asyncio.Future[None]: ...
