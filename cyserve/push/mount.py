"""``App.push(hub, port=..., websocket=...)``: a push hub served with an App.

The hub rides on the App's lifecycle, so every way of running an App (``serve()``, ``App.run``,
the ``cyserve`` command and its workers, ``TestClient``) runs it too:

- startup: ``hub.start()`` (the broker connects), then the TCP listener opens;
- the server begins draining (``app.lifecycle.draining``): the listener closes and the hub
  closes every push connection with ``going_away`` (clients resume elsewhere), within what is
  left of the grace period;
- shutdown: ``hub.stop()`` for what is left (idempotent), the broker disconnects.

Under the ``cyserve`` supervisor each worker opens the push port with ``SO_REUSEPORT`` (the
kernel spreads new connections over the workers; ``reuse_port=None`` decides so by itself): the
HTTP socket is bound once by the supervisor and inherited, but the push port is the App's own,
known only once a worker imported it.  A connection the kernel queued on a worker that then
stops is reset rather than served; push clients reconnect and resume (docs/push-protocol.md §8.4).
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, AsyncIterator

__all__ = ["mount", "PushMount"]


class PushMount:
    """One hub served with an App: where its clients connect.  ``address``: the TCP
    listener's ``(host, port)`` while the app runs (None without a port, or before startup);
    ``websocket``: the WebSocket endpoint's path, or None."""

    __slots__ = ("hub", "host", "port", "websocket", "address")

    def __init__(self, hub: Any, host: str, port: int | None, websocket: str | None) -> None:
        self.hub = hub
        self.host = host
        self.port = port
        self.websocket = websocket
        self.address: tuple[str, int] | None = None

    def __repr__(self) -> str:
        return f"<PushMount port={self.port} websocket={self.websocket!r} address={self.address}>"


def mount(app: Any, hub: Any, *, port: int | None, host: str, websocket: str | None, ssl: Any,
          reuse_port: bool | None) -> PushMount:
    if port is None and websocket is None:
        raise ValueError("App.push needs a port (TCP), a websocket path, or both")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        raise ValueError(f"App.push: port must be an int in 0..65535 (0: any free port), got {port!r}")
    if websocket is not None:
        async def push_endpoint(ws: Any) -> None:
            await hub.serve_websocket(ws)  # sets the connection's message limits from the hub's

        app.websocket(websocket, name=f"push:{websocket}")(push_endpoint)

    record = PushMount(hub, host, port, websocket)
    app.push_mounts.append(record)

    @contextlib.asynccontextmanager
    async def run_hub(app: Any) -> AsyncIterator[None]:
        await hub.start()
        listener: asyncio.Server | None = None
        try:
            if port is not None:
                sock = _bind(host, port, _reuse(reuse_port))
                try:
                    listener = await hub.listen(sock=sock, ssl=ssl)
                    record.address = sock.getsockname()[:2]
                except BaseException:
                    sock.close()
                    raise
            drained = asyncio.get_running_loop().create_task(
                _stop_on_drain(app, hub, listener), name="cyserve.push: stop on drain")
        except BaseException:
            await hub.stop(0.0)
            raise
        try:
            yield
        finally:
            if app.lifecycle.draining.is_set():
                await drained  # the hub's drain, begun with the server's: let it finish
            elif not drained.done():
                drained.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drained
            if listener is not None:
                listener.close()
                record.address = None
            await hub.stop(app.config.timeouts.shutdown_s)

    app.lifespan(run_hub)
    return record


async def _stop_on_drain(app: Any, hub: Any, listener: asyncio.Server | None) -> None:
    lifecycle = app.lifecycle
    await lifecycle.draining.wait()
    if listener is not None:
        listener.close()
    deadline = lifecycle.drain_deadline
    loop = asyncio.get_running_loop()
    grace = app.config.timeouts.shutdown_s if deadline is None else max(0.0, deadline - loop.time())
    await hub.stop(grace)


def _reuse(reuse_port: bool | None) -> bool:
    if reuse_port is not None:
        return reuse_port
    from cyserve.server.process import in_worker
    return in_worker()


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    """The push listener's socket, bound and listening (a bind error names the address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        from cyserve.errors import StartupError
        raise StartupError(f"push listener: cannot bind {host}:{port}: {exc.strerror or exc}") from exc
    return sock
