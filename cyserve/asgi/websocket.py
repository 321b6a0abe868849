"""One WebSocket of an ASGI app over cyserve's WebSocket (``cyserve.websocket.WebSocket``, the
handshake; ``cyserve._core.ws.role``, the frames): the same limits, pings, close handshake,
backpressure and graceful 1001 as a native ``@app.websocket`` handler.

States of ``WebSocketCycle`` (``phase``), one way only::

    CONNECTING --receive: websocket.connect--> HANDSHAKE
    CONNECTING/HANDSHAKE --accept--> OPEN --close sent / peer closed--> CLOSED
    CONNECTING/HANDSHAKE --close--> DENIED (403)
    CONNECTING/HANDSHAKE --websocket.http.response.start/body...--> DENYING --last body--> DENIED

- ``websocket.accept`` answers 101 with its ``subprotocol`` (one the client offered, RFC 6455
  §4.2.2) and ``headers``; permessage-deflate is negotiated as for native handlers.
- Messages come as ``websocket.receive`` with ``text`` or ``bytes``; the peer's close, or the
  connection dropping, as ``websocket.disconnect`` with its code (1005 for a close frame without
  one, 1006 for a dropped connection) and reason; a WebSocket refused or never opened is
  ``websocket.disconnect`` with code 1006 and no reason.
- ``websocket.close`` before accept refuses the upgrade with 403 (as ASGI servers do);
  ``websocket.http.response.*`` (the extension) refuses it with the app's own response.  An app
  that waits on ``receive()`` before answering the handshake hears only the client leaving, or,
  when the server drains meanwhile, 1006 while the upgrade is refused with 503.
- ``send()`` once the peer is gone raises ``ClientDisconnected`` (an ``OSError``, ASGI 2.4);
  after the app's own close, a ``RuntimeError``.
- The app returning (or raising) before it accepted or refused answers 500; raising after accept
  closes with 1011 and is logged.  Returning after accept closes with 1000.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from cyserve.errors import ClientDisconnected, WebSocketDisconnect
from cyserve.lifecycle import drain_notices
from cyserve.response import BaseResponse, Response
from cyserve.websocket import WebSocket

__all__ = ["WebSocketCycle", "refused_handshake", "run_websocket"]

_log = logging.getLogger("cyserve.error")

_CONNECTING, _HANDSHAKE, _OPEN, _CLOSED, _DENYING, _DENIED = range(6)
_TEXT = "text/plain; charset=utf-8"


def _str_fields(fields: Any) -> list[tuple[str, Any]]:
    """ASGI's bytes field names as str, so the handshake recognises the ones it owns."""
    return [(name.decode("latin-1") if isinstance(name, (bytes, bytearray)) else name, value)
            for name, value in fields or ()]


class WebSocketCycle:
    """One WebSocket's ``receive`` and ``send`` for an ASGI app (see the module docstring)."""

    __slots__ = ("ws", "phase", "closed_by_app", "_deny_status", "_deny_fields", "_deny_body")

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.phase = _CONNECTING
        self.closed_by_app = False
        self._deny_status = 0
        self._deny_fields: list[tuple[str, Any]] = []
        self._deny_body: list[bytes] = []

    # ------------------------------------------------------------------ receive
    async def receive(self) -> dict[str, Any]:
        phase = self.phase
        if phase == _OPEN:
            try:
                message = await self.ws.receive()
            except WebSocketDisconnect as exc:
                self.phase = _CLOSED
                return {"type": "websocket.disconnect", "code": exc.code, "reason": exc.reason}
            if type(message) is str:
                return {"type": "websocket.receive", "text": message}
            return {"type": "websocket.receive", "bytes": message}
        if phase == _CONNECTING:
            self.phase = _HANDSHAKE
            return {"type": "websocket.connect"}
        if phase == _CLOSED:
            code = self.ws.close_code
            return {"type": "websocket.disconnect", "code": 1006 if code is None else code,
                    "reason": self.ws.close_reason or ""}
        if phase == _HANDSHAKE:
            # Nothing arrives before the app answers the handshake: only the client leaving,
            # or the server draining, which refuses the upgrade (503, RFC 9110 §15.6.4).
            await self._wait_unanswered()
        # Refused or never opened: no close frame went either way, so there is no reason to
        # report; 1006 is "closed abnormally" (RFC 6455 §7.4.1), as ASGI servers say it.
        return {"type": "websocket.disconnect", "code": 1006}

    async def _wait_unanswered(self) -> None:
        stream = self.ws.request._conn.stream
        left = stream.wait_disconnected()
        drained = drain_notices.watch(stream)
        try:
            await asyncio.wait((left, drained), return_when=asyncio.FIRST_COMPLETED)
        finally:
            drain_notices.unwatch(stream)
        if not left.done():
            await self.ws.reject(503, b"503 Service Unavailable: the server is shutting down\n",
                                 [("Retry-After", "1"), ("Connection", "close")])
        self.phase = _DENIED

    # ------------------------------------------------------------------ send
    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        phase = self.phase
        if kind == "websocket.send":
            if phase != _OPEN:
                raise self._unexpected(kind)
            data: Any = message.get("bytes")
            if data is None:
                data = message.get("text")
                if type(data) is not str:
                    raise TypeError("websocket.send needs 'text' (str) or 'bytes' (bytes)")
            try:
                await self.ws.send(data)
            except WebSocketDisconnect as exc:
                self.phase = _CLOSED
                raise ClientDisconnected(f"the WebSocket is closed ({exc.code})") from exc
        elif kind == "websocket.accept":
            if phase not in (_CONNECTING, _HANDSHAKE):
                raise self._unexpected(kind)
            await self.ws.accept(message.get("subprotocol"), _str_fields(message.get("headers")))
            self.phase = _OPEN
        elif kind == "websocket.close":
            if phase in (_CONNECTING, _HANDSHAKE):
                # Closing before accepting refuses the upgrade: 403 (RFC 6455 §4.2.2).
                await self.ws.reject(403)
                self.phase = _DENIED
            elif phase == _OPEN:
                code = message.get("code")
                # Starts the closing handshake (ValueError for a code no endpoint may send, RFC
                # 6455 §7.4); the end of the app's call waits for it.
                self.ws._open_role().close(1000 if code is None else code,
                                           message.get("reason") or "")
                self.phase = _CLOSED
                self.closed_by_app = True
            elif phase == _CLOSED and not self.closed_by_app:
                return  # the peer closed first: nothing left to close
            else:
                raise self._unexpected(kind)
        elif kind == "websocket.http.response.start":
            if phase not in (_CONNECTING, _HANDSHAKE):
                raise self._unexpected(kind)
            self._deny_status = message["status"]
            self._deny_fields = _str_fields(message.get("headers"))
            self.phase = _DENYING
        elif kind == "websocket.http.response.body":
            if phase != _DENYING:
                raise self._unexpected(kind)
            self._deny_body.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                await self.ws.reject(self._deny_status, b"".join(self._deny_body),
                                     self._deny_fields)
                self.phase = _DENIED
        else:
            raise self._unexpected(kind)

    def _unexpected(self, kind: Any) -> BaseException:
        phase = self.phase
        if phase == _CLOSED and not self.closed_by_app:
            return ClientDisconnected("the WebSocket is closed")
        if phase == _CLOSED:
            return RuntimeError(f"ASGI message {kind!r} after 'websocket.close'")
        if phase in (_CONNECTING, _HANDSHAKE):
            return RuntimeError(f"ASGI message {kind!r} before 'websocket.accept'")
        if phase == _DENIED:
            return RuntimeError(f"ASGI message {kind!r} after the WebSocket was refused")
        if phase == _DENYING:
            return RuntimeError(f"expected 'websocket.http.response.body', got {kind!r}")
        return RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")


class _Upgraded(BaseResponse):
    """What the request answers once the WebSocket was accepted: the 101 went out, nothing more
    is written (an App's middleware and ``after`` hooks see status 101)."""

    __slots__ = ("status", "headers", "content_type")

    def __init__(self) -> None:
        self.status = 101
        self.headers: list[tuple[str, str]] = []
        self.content_type: str | None = None

    async def send(self, conn: Any) -> None:
        return None


def refused_handshake(response: Response) -> Response:
    """A malformed opening handshake's answer, with ``Connection: close``: RFC 6455 §4.2.1 has
    the server stop processing such a handshake, and what the client sends next (a body it
    declared, frames it should not have sent yet) is not an HTTP request to read."""
    response.headers.append(("Connection", "close"))
    return response


def _server_error() -> Response:
    return Response(b"500 Internal Server Error\n", 500, [("Connection", "close")], _TEXT)


async def run_websocket(app: Callable[..., Awaitable[None]], scope: dict[str, Any],
                        ws: WebSocket, running: set[asyncio.Future[Any]] | None = None
                        ) -> BaseResponse:
    """Run ``app`` for the WebSocket ``ws`` (its handshake already checked); the response the
    request answers: the app's refusal, 403, 500, or the accepted upgrade.  ``running``: a set
    the app's task is kept in while it runs (the host's shutdown waits for them: an app may
    still be at work after its socket closed)."""
    cycle = WebSocketCycle(ws)
    # A task of its own, as for native handlers: each message resumes the app alone, and the
    # role cancels it on a forced shutdown (accept() makes it the role's handler_task).
    task = asyncio.ensure_future(app(scope, cycle.receive, cycle.send))
    if running is not None:
        running.add(task)
        task.add_done_callback(running.discard)
    try:
        await task
    except asyncio.CancelledError:
        role = ws._role
        if role is not None:
            role.abort()
        raise
    except Exception as exc:
        if cycle.phase in (_CONNECTING, _HANDSHAKE, _DENYING):
            _log.error("Exception in ASGI application before the WebSocket handshake",
                       exc_info=exc)
            return _server_error()
        if cycle.phase == _DENIED:
            _log.error("Exception in ASGI application after refusing the WebSocket",
                       exc_info=exc)
        elif not (isinstance(exc, OSError) and ws.closed):
            # An app that lets the peer's disconnect end it is not an error.
            _log.error("Exception in ASGI WebSocket application", exc_info=exc)
            role = ws._role
            if role is not None:
                await role.close(1011, "internal error")  # RFC 6455 §7.4.1
    phase = cycle.phase
    if phase in (_CONNECTING, _HANDSHAKE, _DENYING):
        _log.error("ASGI callable returned without accepting or refusing the WebSocket")
        return _server_error()
    if phase == _DENIED:
        rejection = ws._rejection
        assert rejection is not None
        return rejection
    role = ws._role
    assert role is not None
    # The app is done: close normally (only waits when already closing) and run on until the
    # close handshake and TCP are done, as a native handler's request does.
    await role.close(1000, "")
    return _Upgraded()
