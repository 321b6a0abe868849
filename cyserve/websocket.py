"""WebSocket for handlers: the opening handshake the app controls, then messages (RFC 6455).

::

    @app.websocket("/rooms/{room}")
    async def room(ws: WebSocket, room: str):
        if ws.headers.get("origin") != "https://example.org":
            await ws.reject(403, b"bad origin")          # a plain HTTP response, no upgrade
            return
        await ws.accept(subprotocol="chat.v1", headers={"x-room": room})
        async for message in ws:                        # str for text, bytes for binary
            await ws.send(message)                      # waits while the peer is slow

A WebSocket route is a GET route (``Router.websocket``): route parameters, middleware and
``before`` hooks run first, so authentication and origin checks happen before ``accept``.  The
route's endpoint (``WebSocketEndpoint``) checks the upgrade request (§4.2.1; a bad one is answered
400, or 426 for a version other than 13, and never reaches the handler), then runs the handler
with the ``WebSocket`` where the request would go, as a task of its own that the request awaits
(each message resumes the handler alone).  Until ``accept`` the handler may still answer
HTTP: an ``HTTPError`` raised, ``reject(status, body)``, or 403 when it returns without
accepting.  ``accept`` writes the ``101`` and hands the connection to the Cython
``WebSocketRole`` (``cyserve._core.ws.role``); the endpoint then returns a response of status 101
that sends nothing (middleware and ``after`` hooks see it), once the handler has returned and the
close handshake is done: the request runs as long as the WebSocket does.  An exception after
``accept`` closes with 1011 and is logged.

``broadcast(sockets, message)`` writes one prebuilt frame to many sockets and reports the slow ones
instead of waiting for them.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping

from cyserve import _json
from cyserve._core.ws.deflate import server_negotiate
from cyserve._core.ws.role import (PY_WS_OPEN, WebSocketRole, broadcast_message, connection_anext,
                                   connection_receive, connection_send, websocket_role)
from cyserve.config import WebSocketLimits
from cyserve.context import RequestGlobals
from cyserve.datastructures import URL, Headers, QueryParams
from cyserve.errors import WebSocketDisconnect
from cyserve.request import Request
from cyserve.response import BaseResponse, Response

__all__ = ["WebSocket", "WebSocketConnection", "WebSocketEndpoint", "accept_key", "broadcast",
           "check_handshake"]

_log = logging.getLogger("cyserve.websocket")
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455 §1.3
_TEXT = "text/plain; charset=utf-8"
# Fields of the 101 the handshake writes itself (§4.2.2): accept() takes no others by these names.
_HANDSHAKE_FIELDS = frozenset(("upgrade", "connection", "sec-websocket-accept",
                               "sec-websocket-protocol", "sec-websocket-extensions"))


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2 item 5.4)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def _tokens(values: list[str]) -> list[str]:
    """The elements of comma-separated list fields (RFC 9110 §5.6.1), empty ones dropped."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


# ------------------------------------------------------------------ the message API
class WebSocketConnection:
    """The messages of an open WebSocket: what the server's ``WebSocket`` and a client's share.

    Everything goes through a ``WebSocketRole`` (``_role``, None until the connection is open).
    ``receive*`` return the next message, ``send*`` wait only while the peer is slow to read;
    both raise ``WebSocketDisconnect(code, reason)`` once the connection is closed.  Iteration
    yields messages and ends on a normal close (1000, 1001, or a close frame without a code).
    """

    __slots__ = ("_role",)

    def __init__(self) -> None:
        self._role: WebSocketRole | None = None

    def _open_role(self) -> WebSocketRole:
        role = self._role
        if role is None:
            raise RuntimeError("the WebSocket is not open: accept() it first")
        return role

    # The three calls made once per message are C functions of the role's module, bound here as
    # methods: no Python frame, and what they return is the role's coroutine-shaped awaitable
    # rather than a coroutine (bench/ws/README.md: instructions per message).  Like a coroutine
    # it does nothing until awaited, on the awaiting thread (the sync TestClient makes it on its
    # own thread and runs it on the loop's).
    receive = connection_receive
    send = connection_send
    __anext__ = connection_anext

    async def receive_text(self) -> str:
        """The next message, which must be text: a binary one closes with 1003 (RFC 6455
        §7.4.1, a type of data this endpoint cannot accept) and raises ``WebSocketDisconnect``."""
        message = await self.receive()
        if type(message) is not str:
            await self._refuse("expected a text message")
        return message  # type: ignore[return-value]  # _refuse raised otherwise

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary (a text one closes with 1003)."""
        message = await self.receive()
        if type(message) is not bytes:
            await self._refuse("expected a binary message")
        return message  # type: ignore[return-value]  # _refuse raised otherwise

    async def receive_json(self) -> Any:
        """The next message (text or binary) parsed as JSON; ``ValueError`` when it is not."""
        return _json.loads(await self.receive())

    async def _refuse(self, reason: str) -> None:
        role = self._open_role()
        await role.close(1003, reason)
        raise WebSocketDisconnect(1003, reason)

    def send_text(self, text: str) -> Coroutine[Any, Any, None]:
        if type(text) is not str:
            raise TypeError(f"send_text() takes str, not {type(text).__name__}")
        return self._open_role().sending(text)

    def send_bytes(self, data: bytes | bytearray | memoryview) -> Coroutine[Any, Any, None]:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"send_bytes() takes bytes, not {type(data).__name__}")
        return self._open_role().sending(data)

    def send_json(self, data: Any) -> Coroutine[Any, Any, None]:
        """``data`` as compact JSON in a text message."""
        return self._open_role().sending(_json.dumps(data), True)

    async def ping(self, data: bytes = b"") -> float:
        """Send a ping and wait for its pong: the round trip in seconds."""
        return await self._open_role().ping(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close (RFC 6455 §7.1.2): send a close frame and wait for the peer's, at most
        ``close_timeout_s``, then for TCP to close.  Closing a closed socket only waits."""
        await self._open_role().close(code, reason)

    @property
    def close_code(self) -> int | None:
        """The close code: the peer's when it sent a close frame (1005: a frame without one),
        else the one this side sent, else 1006 once the connection dropped; None while open."""
        return None if self._role is None else self._role.close_code

    @property
    def close_reason(self) -> str | None:
        return None if self._role is None else self._role.close_reason

    @property
    def closed(self) -> bool:
        """True once a close frame went either way or the connection dropped."""
        return self._role is not None and self._role.state != PY_WS_OPEN

    @property
    def buffered_bytes(self) -> int:
        """Bytes sent and not yet taken by the peer."""
        return 0 if self._role is None else self._role.buffered_bytes

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self


# ------------------------------------------------------------------ the server's WebSocket
_PENDING, _ACCEPTED, _REJECTED = range(3)


class WebSocket(WebSocketConnection):
    """A WebSocket request as its handler sees it: the request's view (``path``, ``path_params``,
    ``query``, ``headers``, ``cookies``, ``client``, ``url``, ``g``, ``state``, ``subprotocols``
    offered), then ``accept`` or ``reject``, then the messages (``WebSocketConnection``)."""

    __slots__ = ("request", "limits", "subprotocol", "extensions", "_phase", "_key", "_rejection")

    def __init__(self, request: Request, limits: WebSocketLimits, key: str) -> None:
        super().__init__()
        self.request = request
        self.limits = limits
        #: The subprotocol accept() chose, and the Sec-WebSocket-Extensions it answered.
        self.subprotocol: str | None = None
        self.extensions: str | None = None
        self._phase = _PENDING
        self._key = key
        self._rejection: Response | None = None

    # -------------------------------------------------------------- the request's view
    @property
    def path(self) -> str:
        return self.request.path

    @property
    def path_params(self) -> dict[str, Any]:
        return self.request.path_params

    @property
    def query(self) -> QueryParams:
        return self.request.query

    @property
    def headers(self) -> Headers:
        return self.request.headers

    @property
    def cookies(self) -> dict[str, str]:
        return self.request.cookies

    @property
    def client(self) -> tuple[str, int] | None:
        return self.request.client

    @property
    def url(self) -> URL:
        return self.request.url

    @property
    def g(self) -> RequestGlobals:
        return self.request.g

    @property
    def state(self) -> Any:
        return self.request.state

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered (``Sec-WebSocket-Protocol``), in its order."""
        return _tokens(self.request.headers.getlist("sec-websocket-protocol"))

    @property
    def accepted(self) -> bool:
        return self._phase == _ACCEPTED

    # -------------------------------------------------------------- the handshake
    async def accept(self, subprotocol: str | None = None,
                     headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        """Answer ``101 Switching Protocols`` (RFC 6455 §4.2.2) and open the WebSocket.

        ``subprotocol`` must be one the client offered (``ValueError`` otherwise); ``headers``
        are added to the 101 (not the handshake's own fields).  permessage-deflate is negotiated
        when ``limits.compression`` is on and the client offered it."""
        if self._phase != _PENDING:
            raise RuntimeError("accept() after the WebSocket was already accepted or rejected")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client "
                             f"({self.subprotocols}); RFC 6455 §4.2.2")
        fields: list[tuple[str, str]] = [("Sec-WebSocket-Accept", accept_key(self._key))]
        if subprotocol is not None:
            fields.append(("Sec-WebSocket-Protocol", subprotocol))
        offer = ", ".join(self.request.headers.getlist("sec-websocket-extensions"))
        answer, inflater, deflater = server_negotiate(offer or None, self.limits)
        if answer is not None:
            fields.append(("Sec-WebSocket-Extensions", answer))
        if headers:
            pairs = headers.items() if isinstance(headers, Mapping) else headers
            for name, value in pairs:
                if name.lower() in _HANDSHAKE_FIELDS:
                    raise ValueError(f"accept() sets {name} itself; pass subprotocol= instead"
                                     if name.lower() == "sec-websocket-protocol"
                                     else f"accept() sets {name} itself")
                fields.append((name, value))
        limits = self.limits

        def take_over(stream: Any) -> None:
            self._role = websocket_role(stream, limits, False, inflater, deflater)

        self.request._conn.upgrade("websocket", fields, take_over)
        self._phase = _ACCEPTED
        self.subprotocol = subprotocol
        self.extensions = answer
        assert self._role is not None  # take_over ran, or upgrade() raised
        self._role.handler_task = asyncio.current_task()  # the handler's task (the endpoint's)

    async def reject(self, status: int, body: bytes | str = b"",
                     headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        """Refuse the upgrade with a plain HTTP response (no 101).  It goes out when the handler
        returns, through the route's middleware and the ``after`` hooks like any response."""
        if self._phase != _PENDING:
            raise RuntimeError("reject() after the WebSocket was already accepted or rejected")
        if type(status) is not int or not 300 <= status <= 599:
            raise ValueError(f"reject() takes a 3xx, 4xx or 5xx status, not {status!r}")
        fields = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        typed = any(name.lower() == "content-type" for name, _ in fields)
        self._phase = _REJECTED
        self._rejection = Response(body, status, fields, None if typed or not body else _TEXT)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket; before ``accept`` this refuses the upgrade with 403 (as ASGI
        servers do)."""
        if self._phase == _PENDING:
            await self.reject(403)
            return
        if self._phase == _REJECTED:
            return
        await super().close(code, reason)

    def __repr__(self) -> str:
        return f"<WebSocket {self.request.raw_path} {('pending', 'open', 'rejected')[self._phase]}>"


# ------------------------------------------------------------------ the route's endpoint
def _bad(status: int, text: str, fields: list[tuple[str, str]] | None = None) -> Response:
    return Response(f"{status} {text}\n".encode("utf-8"), status, fields, _TEXT)


def check_handshake(request: Request) -> Response | str:
    """The ``Sec-WebSocket-Key`` of a valid opening handshake (RFC 6455 §4.2.1), or the response
    refusing it: 426 with ``Sec-WebSocket-Version: 13`` for another version (§4.2.2), else 400."""
    headers = request.headers
    if request.method != "GET":
        return _bad(400, "Bad Request: a WebSocket handshake is a GET (RFC 6455 §4.1)")
    if request.http_version != "1.1":
        return _bad(400, "Bad Request: a WebSocket handshake needs HTTP/1.1 (RFC 6455 §4.1)")
    if "websocket" not in (t.lower() for t in _tokens(headers.getlist("upgrade"))):
        return _bad(400, "Bad Request: no 'Upgrade: websocket' (RFC 6455 §4.2.1)")
    if "upgrade" not in (t.lower() for t in _tokens(headers.getlist("connection"))):
        return _bad(400, "Bad Request: no 'Connection: Upgrade' (RFC 6455 §4.2.1)")
    if request.content_length or headers.get("transfer-encoding") is not None:
        return _bad(400, "Bad Request: a WebSocket handshake has no body")
    keys = headers.getlist("sec-websocket-key")
    key = keys[0].strip() if len(keys) == 1 else ""
    try:
        valid = len(key) == 24 and len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        return _bad(400, "Bad Request: Sec-WebSocket-Key must be one base64-encoded 16-byte "
                         "value (RFC 6455 §4.2.1)")
    versions = [v.strip() for v in headers.getlist("sec-websocket-version")]
    if versions != ["13"]:
        # RFC 6455 §4.2.2 item 4; RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
        return _bad(426, "Upgrade Required: WebSocket version 13 only",
                    [("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")])
    return key


class _Switched(BaseResponse):
    """What a WebSocket endpoint returns once it accepted: the 101 already went out (``send``
    writes nothing); middleware and ``after`` hooks see its status and fields."""

    __slots__ = ("status", "headers", "content_type", "websocket")

    def __init__(self, websocket: WebSocket) -> None:
        self.status = 101
        self.headers: list[tuple[str, str]] = []
        self.content_type: str | None = None
        self.websocket = websocket

    async def send(self, conn: Any) -> None:
        return None


class WebSocketEndpoint:
    """The handler of a ``@app.websocket`` route, as the route sees it.

    The route's binding (``cyserve.binding``) reads the user's handler's signature through
    ``__wrapped__``: its first parameter (the WebSocket) takes the request's place, path and
    query parameters are bound as for any route, and this object is called with the request and
    them.  ``limits`` is the route's own ``WebSocketLimits``, or None for the App's
    (``bind_websocket_limits``, called when the App starts)."""

    def __init__(self, handler: Callable[..., Awaitable[Any]], limits: WebSocketLimits | None) -> None:
        if not asyncio.iscoroutinefunction(handler) and not asyncio.iscoroutinefunction(
                getattr(handler, "__call__", None)):
            raise TypeError(f"a WebSocket handler must be an async function, not {handler!r}")
        functools.update_wrapper(self, handler)
        self.handler = handler
        self.limits = limits
        self.default_limits = WebSocketLimits()

    def bind_websocket_limits(self, limits: WebSocketLimits) -> None:
        self.default_limits = limits

    async def __call__(self, request: Request, /, **params: Any) -> BaseResponse:
        checked = check_handshake(request)
        if isinstance(checked, Response):
            return checked
        ws = WebSocket(request, self.limits or self.default_limits, checked)
        try:
            # The handler runs as a task of its own, awaited here, so each message resumes the
            # handler alone rather than the app's chain above it as well (about 1,000 of ~15,000
            # instructions per echoed message: bench/ws/README.md).  Cancelling this request
            # cancels the task it awaits; a server abort cancels the task itself (accept() makes
            # it the role's handler_task); either way the CancelledError arrives here.
            await asyncio.ensure_future(self.handler(ws, **params))
        except WebSocketDisconnect:
            if ws._phase != _ACCEPTED:
                raise
            # The peer left and the handler let the disconnect end it: a normal end.
        except asyncio.CancelledError:
            if ws._role is not None:
                ws._role.abort()
            raise
        except Exception:
            if ws._phase != _ACCEPTED:
                raise  # an HTTPError (or a failure) before accept is answered as HTTP
            _log.exception("unhandled error in WebSocket handler for %s", request.raw_path)
            assert ws._role is not None
            await ws._role.close(1011, "internal error")  # only waits when already closing
            return _Switched(ws)
        if ws._phase == _PENDING:
            # RFC 6455 §4.2.2: the server refuses the handshake; 403 says the app chose to.
            return _bad(403, "Forbidden: the WebSocket was not accepted")
        if ws._phase == _REJECTED:
            assert ws._rejection is not None
            return ws._rejection
        role = ws._role
        assert role is not None
        # The handler returned: close normally, and run on until the close handshake is done.
        await role.close(1000, "")
        return _Switched(ws)


# ------------------------------------------------------------------ broadcast
def broadcast(sockets: Iterable[WebSocketConnection], message: str | bytes) -> list[WebSocketConnection]:
    """Send ``message`` to every open socket in ``sockets`` without waiting for any.

    The frame is built once, uncompressed (RFC 7692 lets any message go uncompressed, and no
    connection's compression context is touched), and the same bytes are written to each.  A
    socket whose peer is slow (above its ``write_high_water``) is skipped: the skipped sockets
    are returned, for the caller to drop, retry or send to with ``await ws.send()``.  Closed
    sockets are passed over silently.  A client socket gets a frame of its own (each is masked
    with a fresh key, RFC 6455 §5.3).

    The frames leave two loop turns later, one write per socket for all the broadcasts made
    until then (a publisher handling its queued messages, or the next one it is sent meanwhile,
    costs each member one system call, not one per message); a socket's own ``send`` in between
    keeps its place after them."""
    slow: list[WebSocketConnection] = broadcast_message(sockets, message)
    return slow
