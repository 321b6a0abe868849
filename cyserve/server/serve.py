"""serve(): the listener on a running loop, and the graceful shutdown (``Server.shutdown``).

Shutdown order (after uvicorn's): stop listening; close idle keep-alive connections and let busy
ones close after their current response; wait up to ``Timeouts.shutdown_s`` for in-flight
requests; then cancel what is left and drop the connections.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from typing import Any

from cyserve._core.http.server import server_connection
from cyserve._core.http.state import ServerState

__all__ = ["Server", "serve"]

_log = logging.getLogger("cyserve.server")


class Server:
    """A listening cyserve server; ``await server.shutdown()`` stops it gracefully."""

    def __init__(self, app: Any, state: ServerState, listener: asyncio.Server) -> None:
        self.app = app
        self.state = state
        self.listener = listener
        sockets = list(listener.sockets or ())
        #: The bound (host, port) pairs, kept after shutdown for logs and tests.
        self.addresses = [s.getsockname()[:2] for s in sockets]
        self.port: int = self.addresses[0][1] if self.addresses else 0

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self.listener.sockets or ())

    async def shutdown(self, timeout_s: float | None = None) -> None:
        grace = self.app.config.timeouts.shutdown_s if timeout_s is None else timeout_s
        self.listener.close()
        self.state.begin_shutdown()
        try:
            await asyncio.wait_for(self.state.wait_closed(), grace)
        except asyncio.TimeoutError:
            _log.warning("%d connection(s) still busy after %.1fs: cancelling",
                         len(self.state.connections), grace)
            self.state.abort_all()
            await asyncio.sleep(0)
        await self.listener.wait_closed()
        await self.app.shutdown()  # lifespan exit, tracked tasks, shutdown hooks (cyserve.lifecycle)


async def serve(app: Any, host: str = "127.0.0.1", port: int = 8000, *,
                sock: socket.socket | None = None, reuse_port: bool = False,
                ssl: ssl_module.SSLContext | None = None) -> Server:
    """Run the app's startup, then listen on the running loop and return the ``Server``.

    ``ssl``: a server-side ``SSLContext`` to serve HTTPS (``tls_context()`` builds one).
    A startup failure propagates (nothing listens); if listening fails, the app is shut down."""
    if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
        raise TypeError(f"ssl must be an ssl.SSLContext, not {type(ssl).__name__}")
    if sock is None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        # The OS would take the port modulo 65536 (80000 -> 14464) and bind it without a word.
        raise ValueError(f"port must be an int in 0..65535 (0: any free port), got {port!r}")
    loop = asyncio.get_running_loop()
    await app.startup()
    state = ServerState(app.handle, app.config, loop)

    def factory() -> Any:
        return server_connection(state)

    try:
        if sock is not None:
            listener = await loop.create_server(factory, sock=sock, backlog=app.config.backlog,
                                                ssl=ssl)
        else:
            listener = await loop.create_server(factory, host, port, backlog=app.config.backlog,
                                                reuse_port=reuse_port or None, ssl=ssl)
    except BaseException:
        await app.shutdown()
        raise
    return Server(app, state, listener)
