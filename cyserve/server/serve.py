"""serve(): the listener on a running loop, and the graceful shutdown (``Server.shutdown``).

Shutdown order (uvicorn's, with the long-lived responses told instead of waited for), all of it
within one grace period (``timeout_s``, default ``Timeouts.shutdown_s``):

1. stop accepting: the listener closes, ``server.draining`` turns true (``ready`` false), and
   connections accepted an instant before get a moment (``_ACCEPTED_SETTLE_S``) to read what
   their client already sent;
2. idle keep-alive connections close now; busy ones close after their current response (the
   core's ``ServerState.begin_shutdown``); WebSockets get Close 1001 and run the closing
   handshake (RFC 6455 §7.4.1, the WebSocket role, bounded by its ``close_timeout_s``);
3. the draining is announced: ``app.lifecycle.draining`` is set and every connection is told
   (``cyserve.lifecycle.drain_notices``), so an ``SSEResponse`` ends its stream with the
   terminating chunk at once rather than running into the grace period;
4. in-flight requests finish, plain ``StreamResponse`` producers included, until the deadline;
5. what still runs then is cancelled and its connection dropped, with one warning line saying
   how many;
6. the app's shutdown: background tasks (for what is left of the grace period), hooks, lifespan
   exit.

``Server.abort()`` (a second Ctrl-C) jumps to step 5 at once; a shutdown in progress then goes
on with step 6.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from typing import Any, Awaitable, Callable

from cyserve._core.http.server import server_connection
from cyserve._core.http.state import ServerState
from cyserve.lifecycle import drain_notices

__all__ = ["Server", "serve"]

_log = logging.getLogger("cyserve.error")

# Between closing the listener and closing idle connections: a connection accepted an instant
# ago whose request is in the kernel but not yet read looks idle, and closing it would lose a
# request its client sent and will not retry on a fresh connection (RFC 9112 §9.3.1 lets clients
# retry only what they know was not processed; many retry only on reused connections).  A few
# loop turns are enough to read it; the grace period pays for them.
_ACCEPTED_SETTLE_S = 0.05

# After the grace period: how long the dropped connections get to report they are gone (their
# connection_lost runs on the loop's next turns) before the app's shutdown goes on regardless.
_ABORT_SETTLE_S = 1.0


class Server:
    """A listening cyserve server; ``await server.shutdown()`` stops it gracefully.

    ``ready`` is true from the moment it listens until its shutdown begins; ``draining`` from
    then on (the first ``shutdown()`` call, or the core's ``ServerState.shutting_down`` after an
    ``abort()``).
    """

    def __init__(self, app: Any, state: ServerState, listener: asyncio.Server) -> None:
        self.app = app
        self.state = state
        self.listener = listener
        sockets = list(listener.sockets or ())
        #: The bound addresses, kept after shutdown for logs and tests: (host, port) pairs, or a
        #: path for a Unix socket.
        self.addresses = [s.getsockname() if s.family == socket.AF_UNIX else s.getsockname()[:2]
                          for s in sockets]
        first = self.addresses[0] if self.addresses else None
        self.port: int = first[1] if isinstance(first, tuple) else 0
        self._finished: asyncio.Future[None] | None = None  # made by the first shutdown() call

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self.listener.sockets or ())

    @property
    def draining(self) -> bool:
        """True once ``shutdown()`` (or ``abort()``) began: no new connections, the open ones
        are finishing."""
        return self._finished is not None or bool(self.state.shutting_down)

    @property
    def ready(self) -> bool:
        """True while the server listens and is not draining (readiness, ``cyserve.health``)."""
        return not self.draining

    async def shutdown(self, timeout_s: float | None = None) -> None:
        """Stop gracefully within ``timeout_s`` (default: the app's ``Timeouts.shutdown_s``), in
        the order the module docstring gives.  A second call waits for the first one's end."""
        if self._finished is not None:
            # shield: a caller cancelled while waiting must not cancel the first call's future.
            await asyncio.shield(self._finished)
            return
        loop = asyncio.get_running_loop()
        self._finished = loop.create_future()
        try:
            await self._shut_down(loop, self.app.config.timeouts.shutdown_s
                                  if timeout_s is None else timeout_s)
        finally:
            if not self._finished.done():
                self._finished.set_result(None)

    def abort(self) -> None:
        """Cut the grace period short (a second Ctrl-C): stop accepting, cancel every running
        handler and drop every connection now.  A ``shutdown()`` in progress then goes straight
        on to the app's shutdown, so the lifespan still exits; background tasks are cancelled."""
        loop = asyncio.get_running_loop()
        self.listener.close()
        state = self.state
        if not state.shutting_down:
            state.begin_shutdown()
        self.app.lifecycle.begin_drain(loop.time())
        if state.connections:
            _log.warning("shutdown forced: dropping %d connection(s)", len(state.connections))
        state.abort_all()

    async def _shut_down(self, loop: asyncio.AbstractEventLoop, grace_s: float) -> None:
        deadline = loop.time() + grace_s
        state = self.state
        self.listener.close()
        self.app.lifecycle.begin_drain(deadline)
        await asyncio.sleep(min(_ACCEPTED_SETTLE_S, grace_s))
        state.begin_shutdown()
        held = list(state.connections)
        drain_notices.tell(held)
        try:
            if state.connections:
                _log.info("waiting up to %.1fs for %d connection(s) to finish",
                          grace_s, len(state.connections))
            if not await _within(state.wait_closed(), deadline - loop.time()):
                _log.warning("graceful shutdown: %d connection(s) still busy after %.1fs: "
                             "cancelling their handlers and dropping them",
                             len(state.connections), grace_s)
                state.abort_all()
                await _within(state.wait_closed(), _ABORT_SETTLE_S)
            # A handler can outlive its connection (a WebSocket handler still at work after
            # its socket closed): it gets what is left of the grace period, as in-flight
            # requests do; what still runs then is cancelled with the app's tasks.
            if not await _until(lambda: state.requests_active == 0, deadline - loop.time()):
                _log.warning("graceful shutdown: %d handler(s) still running after %.1fs",
                             state.requests_active, grace_s)
        finally:
            drain_notices.forget(held)
        # Python 3.12+ waits here for the server's transports too: gone by now, or dropped.
        await _within(self.listener.wait_closed(), _ABORT_SETTLE_S)
        await self.app.shutdown()  # background tasks, hooks, lifespan exit (cyserve.lifecycle)


async def _within(awaitable: Awaitable[None], timeout_s: float) -> bool:
    """Await ``awaitable`` for at most ``timeout_s``: True if it finished in time."""
    try:
        await asyncio.wait_for(awaitable, max(0.0, timeout_s))
    except asyncio.TimeoutError:
        return False
    return True


async def serve(app: Any, host: str = "127.0.0.1", port: int = 8000, *,
                sock: socket.socket | None = None, reuse_port: bool = False,
                ssl: ssl_module.SSLContext | None = None,
                configure: Callable[[ServerState], Any] | None = None) -> Server:
    """Run the app's startup, then listen on the running loop and return the ``Server``.

    ``sock``: an already bound (and listening, or not) socket to serve instead of ``host`` and
    ``port``, TCP or Unix (an inherited or systemd-activated one).  ``ssl``: a server-side
    ``SSLContext`` to serve HTTPS (``tls_context()`` or ``ReloadableTLS(...).context`` builds
    one).  A startup failure propagates (nothing listens); if listening fails, the app is shut
    down.  ``configure(state)`` runs on the core's ``ServerState`` before anything listens: the
    place to set what every connection must see from its first byte (``state.observer``,
    ``state.proxy_trusted``), which a caller setting it after ``serve()`` returned could miss
    for the connections the loop accepted in between."""
    if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
        raise TypeError(f"ssl must be an ssl.SSLContext, not {type(ssl).__name__}")
    if sock is None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        # The OS would take the port modulo 65536 (80000 -> 14464) and bind it without a word.
        raise ValueError(f"port must be an int in 0..65535 (0: any free port), got {port!r}")
    loop = asyncio.get_running_loop()
    await app.startup()
    state = ServerState(app.handle, app.config, loop)
    if configure is not None:
        try:
            configure(state)
        except BaseException:
            await app.shutdown()
            raise

    def factory() -> Any:
        return server_connection(state)

    try:
        listener: asyncio.Server
        if sock is not None and sock.family == socket.AF_UNIX:
            listener = await loop.create_unix_server(factory, sock=sock, backlog=app.config.backlog,
                                                     ssl=ssl)
        elif sock is not None:
            listener = await loop.create_server(factory, sock=sock, backlog=app.config.backlog,
                                                ssl=ssl)
        else:
            listener = await loop.create_server(factory, host, port, backlog=app.config.backlog,
                                                reuse_port=reuse_port or None, ssl=ssl)
    except BaseException:
        await app.shutdown()
        raise
    return Server(app, state, listener)


async def _until(done: Callable[[], bool], timeout_s: float, every_s: float = 0.01) -> bool:
    """Poll ``done`` for at most ``timeout_s`` (no event to wait on: the counter is the core's)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + max(0.0, timeout_s)
    while not done():
        if loop.time() >= end:
            return False
        await asyncio.sleep(every_s)
    return True
