"""``App.mount(prefix, asgi_app)``: an ASGI app served under a prefix of a cyserve App, so an
existing Starlette or FastAPI app keeps running while routes move to the App one by one.

The mount is a route of the App (``prefix`` and everything under it, every method of RFC 9110
and PATCH), so the App's global middleware and hooks run for its requests too.  The mounted app
sees the ASGI scope of the request with ``root_path`` the prefix and ``path`` the full path (ASGI
2.4, as Starlette's own ``Mount`` passes it): an app that routes on ``path`` minus
``root_path`` answers there as it did at ``/``, and its URLs are built under the prefix.

An HTTP request is answered by an ``ASGIResponse``: the mounted app runs when the App sends that
response, so it streams as it would alone.  Its status and fields are final only in ``send``
(as for ``FileResponse``): middleware see status 200 until then; fields they add
(``response.headers``: CORS, ``DefaultHeaders``...) are added to the app's own unless it set a
field of that name.  A WebSocket upgrade runs the app's WebSocket inside the route, as a native
``@app.websocket`` handler does.

With ``lifespan=True`` (the default) the mounted app's ASGI lifespan runs with the App's
(``auto`` mode: an app without lifespan support is served without), and its ``state`` reaches the
mounted app's request scopes.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from cyserve._core.http.asgi import ASGIEntry
from cyserve.asgi.http import send_file
from cyserve.asgi.lifespan import Lifespan
from cyserve.asgi.scope import websocket_scope
from cyserve.asgi.websocket import refused_handshake, run_websocket
from cyserve.response import BaseResponse, Response
from cyserve.websocket import WebSocket, check_handshake

__all__ = ["ASGIMount", "ASGIResponse", "MOUNT_METHODS", "mount", "wants_websocket"]

ASGIApp = Callable[..., Awaitable[None]]
#: The methods a mount answers: RFC 9110 §9.3's (CONNECT aside: its target is not a path) and
#: PATCH (RFC 5789); the mounted app decides what each means, OPTIONS and HEAD included.
MOUNT_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH")


def wants_websocket(head: Any) -> bool:
    """The request asks to upgrade to WebSocket (RFC 6455 §4.1: ``Upgrade: websocket`` with
    ``Connection: upgrade``, which ``head.upgrade`` already checked)."""
    if not head.upgrade:
        return False
    for value in head.get_all("upgrade"):
        for token in value.split(","):
            if token.strip().lower() == "websocket":
                return True
    return False


class ASGIResponse(BaseResponse):
    """The answer of a mounted app to one HTTP request: the app runs in ``send``."""

    __slots__ = ("status", "headers", "content_type", "_entry", "_request")

    def __init__(self, entry: ASGIEntry, request: Any) -> None:
        #: 200 until the mounted app starts its response, then its status.
        self.status = 200
        self.headers: list[tuple[str, str]] = []
        self.content_type: str | None = None
        self._entry = entry
        self._request = request

    def _on_start(self, status: int) -> None:
        self.status = status

    async def send(self, conn: Any) -> None:
        request = self._request
        await self._entry.run(conn, request._head, request.raw_body, self.headers or None,
                              self._on_start)


async def _no_upgrade(conn: Any, head: Any, body: Any) -> None:
    raise AssertionError("a mount's entry is only ever run(), never handle()d")


class ASGIMount:
    """The route handler of a mount: ``app`` behind ``entry`` (its root_path and lifespan
    state); ``owner`` is the App whose ``websocket_limits`` apply to its WebSockets."""

    def __init__(self, app: ASGIApp, entry: ASGIEntry, owner: Any) -> None:
        self.app = app
        self.entry = entry
        self.owner = owner

    @property
    def __name__(self) -> str:  # the router names routes after their handler
        return f"mount:{self.entry.root_path or '/'}"

    async def __call__(self, request: Any) -> BaseResponse:
        head = request._head
        if wants_websocket(head):
            checked = check_handshake(request)
            if isinstance(checked, Response):
                return refused_handshake(checked)
            ws = WebSocket(request, self.owner.websocket_limits, checked)
            scope = websocket_scope(self.entry, request._conn, head, ws.subprotocols)
            return await run_websocket(self.app, scope, ws)
        return ASGIResponse(self.entry, request)


def mount_entry(app: ASGIApp, root_path: str, in_path: bool, state: dict[str, Any],
                extra: Any = None) -> ASGIEntry:
    """The entry a mount runs ``app`` through (also the ASGI host's internal App's)."""
    return ASGIEntry(app, root_path, in_path, state, extra, _no_upgrade, None, send_file)


def mount(owner: Any, prefix: str, app: ASGIApp, *, name: str | None = None,
          lifespan: bool = True) -> ASGIMount:
    """Route ``prefix`` and everything under it of the App ``owner`` to the ASGI ``app``
    (``App.mount``; see the module docstring)."""
    if not callable(app):
        raise TypeError(f"mount() takes an ASGI application, not {app!r}")
    stripped = prefix.strip("/")
    base = "/" + stripped if stripped else ""
    state: dict[str, Any] = {}
    endpoint = ASGIMount(app, mount_entry(app, base, True, state), owner)
    label = name or endpoint.__name__
    owner.router.add(base + "/{path:path}", endpoint, MOUNT_METHODS, label, include_in_schema=False)
    if base:  # "/{path:path}" takes "/" itself; a prefix needs its own bare path
        owner.router.add(base, endpoint, MOUNT_METHODS, label + ":root", include_in_schema=False)
    if lifespan:
        owner.lifecycle.add_lifespan(
            lambda _app: Lifespan(app, "auto", state, owner.config.timeouts.shutdown_s))
    return endpoint
