"""The HTTP/1.1 server connection."""
import asyncio
from typing import Any, Awaitable, Callable

from cyserve._core.sender import Sender
from cyserve._core.state import ServerState

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
    def begin_shutdown(self) -> None:
        """No more keep-alive: close now when idle, else after the current response."""
    def abort(self) -> None:
        """Cancel the handler and drop the connection (shutdown grace period over)."""
    @property
    def reading_paused(self) -> bool:
        """True while reading is paused for backpressure (body or pipeline water marks)."""
    @property
    def requests_served(self) -> int: ...
    def is_disconnected(self) -> bool:
        """True once the client closed (or half-closed) the connection."""
    def wait_disconnected(self) -> asyncio.Future[None]: ...
