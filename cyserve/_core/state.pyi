"""State shared by every connection of one listening server."""
import asyncio
from typing import Any, Awaitable, Callable

from cyserve.config import ServerConfig

class ServerState:
    """Configuration (copied into C fields), the app entry point and the live connections."""

    entry: Callable[[Any, Any, Any], Awaitable[None]]
    loop: asyncio.AbstractEventLoop
    connections: set[Any]
    shutting_down: bool
    def __init__(self, entry: Callable[..., Awaitable[None]], config: ServerConfig,
                 loop: asyncio.AbstractEventLoop | None = ...) -> None: ...
    def begin_shutdown(self) -> None:
        """Close idle connections now; busy ones close after their current response."""
    async def wait_closed(self) -> None:
        """Return once every connection is gone."""
    def abort_all(self) -> None:
        """Cancel running handlers and drop every connection."""

