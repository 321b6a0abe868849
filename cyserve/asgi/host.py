"""``ASGIHost``: an ASGI 3 application as the cyserve server serves it.

``serve()`` (and the command line's workers) need an object with ``config`` (the core's
``ServerConfig``), ``lifecycle`` (startup, shutdown, draining), ``startup()``, ``shutdown()`` and
``handle(conn, head, body)``, the core's one call per request; ``ASGIHost`` is that object around
the app.

The per-request path is kept short and in C (``ASGIEntry.handle``, ``cyserve._core.http.asgi``):
it builds the scope, makes one ``HTTPExchange`` whose bound ``receive``/``send`` the app gets, and
awaits the app; no Task, no closure, no ``Request`` object, no Python frame of the adapter's.  What the command line adds is folded in without leaving that
path: trusted proxy headers (``--proxy-headers``) are resolved straight from the head into
``conn.forwarded`` (what the scope's ``client`` and ``scheme`` read, and the access log), and
``--header`` fields are merged into each response's head.  Only middleware written for cyserve
Apps (``--health-path``, ``--metrics``: they answer their own paths) need a ``Request``: with any
in ``middlewares`` the host serves the app through an internal App that mounts it at ``/`` and
runs them first.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Coroutine

from cyserve._core.http.asgi import ASGIEntry, merged_fields
from cyserve.asgi.http import send_file
from cyserve.asgi.lifespan import LIFESPAN_MODES, Lifespan
from cyserve.asgi.mount import ASGIMount, MOUNT_METHODS, mount_entry, wants_websocket
from cyserve.asgi.scope import websocket_scope
from cyserve.asgi.websocket import refused_handshake, run_websocket
from cyserve.config import Limits, ServerConfig, Timeouts, WaterMarks, WebSocketLimits
from cyserve.errors import BadRequest
from cyserve.lifecycle import Lifecycle
from cyserve.proxy import ProxyHeaders, TrustedPeers, peer_host
from cyserve.request import Request
from cyserve.websocket import WebSocket, check_handshake

__all__ = ["ASGIHost"]

ASGIApp = Callable[..., Awaitable[None]]
Entry = Callable[[Any, Any, Any], Coroutine[Any, Any, None]]
# After cancelling what outlived the grace period: how long its tasks get to end.
_CANCEL_SETTLE_S = 1.0
_log = logging.getLogger("cyserve.error")


class ASGIHost:
    """Serve the ASGI 3 callable ``app`` (see the module docstring).

    ``ASGIHost(app, *, lifespan="auto", root_path="", limits=None, timeouts=None,
    water_marks=None, websocket=None, server_header="cyserve")``: ``lifespan`` as uvicorn's
    ``--lifespan`` (``cyserve.asgi.lifespan``), ``root_path`` the prefix a proxy strips
    (``--root-path``); the limits, timeouts, water marks and WebSocket limits are the core's,
    as for an ``App``.
    """

    def __init__(self, app: ASGIApp, *, lifespan: str = "auto", root_path: str = "",
                 limits: Limits | None = None, timeouts: Timeouts | None = None,
                 water_marks: WaterMarks | None = None, websocket: WebSocketLimits | None = None,
                 server_header: str | None = "cyserve") -> None:
        if not callable(app):
            raise TypeError(f"ASGIHost serves an ASGI application, not {app!r}")
        if lifespan not in LIFESPAN_MODES:
            raise ValueError(f"lifespan must be one of {LIFESPAN_MODES}, got {lifespan!r}")
        if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
            raise ValueError(f"root_path starts with '/' and has no trailing '/', not {root_path!r}")
        self.app = app
        self.config = ServerConfig(limits=limits or Limits(), timeouts=timeouts or Timeouts(),
                                   water_marks=water_marks or WaterMarks(),
                                   server_header=server_header)
        self.websocket_limits = websocket or WebSocketLimits()
        self.lifespan = lifespan
        self.root_path = root_path
        self.lifecycle = Lifecycle()
        #: The lifespan scope's ``state``; every request's scope gets a shallow copy of it.
        self.state: dict[str, Any] = {}
        #: Middleware written for cyserve Apps, run before the app (``--health-path``,
        #: ``--metrics``); set before the server starts.
        self.middlewares: list[Any] = []
        #: Fields added to every response whose app did not set one of that name (``--header``).
        self.default_headers: list[tuple[str, str]] = []
        #: Peers whose proxy headers are believed (``--proxy-headers``), or None.
        self.trusted: TrustedPeers | None = None
        # The resolver of ``trusted``, made when the entry is (so its memory of answers lasts
        # the server's life, shared by the C entry's hook and the internal App's middleware).
        self._proxy: ProxyHeaders | None = None
        self._entry = self._make_entry()
        self._inner: Any = None
        #: The tasks of WebSocket apps running now (``run_websocket`` keeps them here).
        self._websockets: set[asyncio.Future[Any]] = set()
        #: The core's entry, ``handle(conn, head, body)``: the C entry's unless middleware need
        #: the internal App (chosen at startup).
        self.handle: Entry = self._entry.handle
        self.lifecycle.add_lifespan(self._lifespan)

    def _lifespan(self, _owner: Any) -> Lifespan:
        return Lifespan(self.app, self.lifespan, self.state, self.config.timeouts.shutdown_s)

    def on_startup(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Run ``fn`` at startup, after the app's lifespan startup."""
        self.lifecycle.startup_hooks.append(fn)
        return fn

    def on_shutdown(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Run ``fn`` at shutdown, before the app's lifespan shutdown."""
        self.lifecycle.shutdown_hooks.append(fn)
        return fn

    # ------------------------------------------------------------------ starting and stopping
    async def startup(self) -> None:
        """Settle what the options chose, then run the lifespan startup (``serve()`` calls it
        before listening); a failed startup raises ``StartupError``."""
        if self.lifespan not in LIFESPAN_MODES:
            raise ValueError(f"lifespan must be one of {LIFESPAN_MODES}, got {self.lifespan!r}")
        self._entry = self._make_entry()
        self.handle = self._through_app() if self.middlewares else self._entry.handle
        await self.lifecycle.start(self)

    async def shutdown(self) -> None:
        """After the connections closed (``Server.shutdown()`` calls it then): wait for the
        WebSocket apps still at work after their socket closed, within what is left of the
        drain's grace period (then cancel them), and run the lifespan shutdown."""
        running = set(self._websockets)
        if running:
            loop = asyncio.get_running_loop()
            deadline = self.lifecycle.drain_deadline
            grace_s = (self.config.timeouts.shutdown_s if deadline is None
                       else max(0.0, deadline - loop.time()))
            _, late = await asyncio.wait(running, timeout=grace_s)
            if late:
                _log.warning("graceful shutdown: %d WebSocket app(s) still running after their "
                             "connection closed: cancelling them", len(late))
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=_CANCEL_SETTLE_S)
        await self.lifecycle.stop(self.config.timeouts.shutdown_s)

    def _make_entry(self) -> ASGIEntry:
        self._proxy = None if self.trusted is None else ProxyHeaders(self.trusted)
        return ASGIEntry(self.app, self.root_path, False, self.state, self.default_headers,
                         self._upgrade, None if self._proxy is None else self._forwarded,
                         send_file)

    def _through_app(self) -> Entry:
        """The entry through an internal App: the middleware, then the app mounted at ``/``."""
        from cyserve.app import App
        from cyserve.middleware import DefaultHeaders

        inner = App(limits=self.config.limits, timeouts=self.config.timeouts,
                    water_marks=self.config.water_marks, websocket=self.websocket_limits,
                    server_header=self.config.server_header, redirect_slashes=False)
        entry = mount_entry(self.app, self.root_path, False, self.state)
        inner.router.add("/{path:path}", ASGIMount(self.app, entry, inner), MOUNT_METHODS, "asgi",
                         include_in_schema=False)
        if self._proxy is not None:
            inner.use(self._proxy)
        for middleware in self.middlewares:
            inner.use(middleware)
        if self.default_headers:
            inner.use(DefaultHeaders(self.default_headers))
        inner._freeze()
        self._inner = inner
        handle: Entry = inner.handle
        return handle

    # ------------------------------------------------------------------ per request
    def _forwarded(self, conn: Any, head: Any) -> bool:
        """Believe a trusted peer's proxy headers (``cyserve.proxy``); False when they were
        malformed and the request was answered 400."""
        proxy = self._proxy
        assert proxy is not None
        try:
            found = proxy.resolve(peer_host(conn.stream.peername), head)
        except BadRequest as exc:
            conn.respond(400, None, f"400 Bad Request: {exc.detail}\n".encode("utf-8"),
                         "text/plain; charset=utf-8")
            return False
        if found is not None:
            conn.forwarded = found
        return True

    async def _upgrade(self, conn: Any, head: Any, body: Any) -> None:
        """A request that asks to upgrade: a WebSocket handshake, else plain HTTP (an Upgrade
        the server does not take is ignored, RFC 9110 §7.8)."""
        if not wants_websocket(head):
            await self._entry.run(conn, head, body)
            return
        request = Request(conn, head, body)
        checked = check_handshake(request)
        if isinstance(checked, str):
            ws = WebSocket(request, self.websocket_limits, checked)
            scope = websocket_scope(self._entry, conn, head, ws.subprotocols)
            response: Any = await run_websocket(self.app, scope, ws, self._websockets)
            if response.status == 101:
                return
        else:
            response = refused_handshake(checked)
        fields = response.headers
        if self.default_headers:
            fields = merged_fields(fields, self.default_headers)
        conn.respond(response.status, fields, response.body, response.content_type)
