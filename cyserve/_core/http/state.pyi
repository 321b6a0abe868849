"""What the connections of one server, or of one client, share: configuration in C fields."""
import asyncio
from typing import Any, Awaitable, Callable

from cyserve.config import ClientLimits, ServerConfig

class ServerState:
    """The app's entry point, the loop, the configuration and the registry of live streams."""

    entry: Callable[[Any, Any, Any], Awaitable[None]]
    loop: asyncio.AbstractEventLoop
    connections: set[Any]
    shutting_down: bool
    def __init__(self, entry: Callable[..., Awaitable[None]], config: ServerConfig,
                 loop: asyncio.AbstractEventLoop | None = ...) -> None: ...
    def join(self, stream: Any) -> None:
        """A connection started (the stream reports it)."""
    def leave(self, stream: Any) -> None:
        """A connection ended."""
    def begin_shutdown(self) -> None:
        """Close idle connections now; busy ones close after their current response."""
    async def wait_closed(self) -> None:
        """Return once every connection is gone."""
    def abort_all(self) -> None:
        """Cancel running handlers and drop every connection."""

class ClientState:
    """Shared by the connections of one ``Client``."""

    loop: asyncio.AbstractEventLoop
    keepalive_s: float
    def __init__(self, loop: asyncio.AbstractEventLoop, limits: ClientLimits) -> None: ...
