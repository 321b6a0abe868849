"""One connection of a push client (``cyserve.push.client``): its two transports (``_TcpWire``,
``_WsWire``) and the rules of one connection (``_Connection``: the frame order of §5, calls in
flight §7, heartbeat and idle timer §10).  The session that outlives a connection (ids, sequence
numbers, the queue, reconnecting) is the ``PushClient``'s, which each connection reports to.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final, Union

from cyserve._core.push.frames import (
    KIND_CLOSE, KIND_ERROR, KIND_GAP, KIND_NAMES, KIND_PING, KIND_PONG, KIND_PUSH, KIND_REFUSE,
    KIND_REPLY, KIND_WELCOME, Frame, FrameDecoder, Violation, encode,
)
from cyserve.errors import PushCallError, PushClosed, PushRefused, WebSocketDisconnect

if TYPE_CHECKING:
    from cyserve._core.ws.role import WebSocketRole
    from cyserve.client.websocket import ClientWebSocket
    from cyserve.push.client import PushClient

_WS_CLOSE: Final = {"normal": 1000, "going_away": 1001, "idle_timeout": 1001, "too_large": 1009}

# A connection's states (_Connection.state):
#   HELLO (HELLO sent, waiting) -> OPEN (WELCOME) -> CLOSING (our CLOSE sent) -> DONE
#   HELLO -> DONE (REFUSE, CLOSE, a violation, lost, timeout); OPEN -> DONE
# DONE is reached once, by _Connection.end, which reports it exactly once.
_C_HELLO, _C_OPEN, _C_CLOSING, _C_DONE = range(4)


# ---------------------------------------------------------------------- the two transports
class _TcpWire(asyncio.Protocol):
    """A TCP connection (plain or TLS): bytes in go to the connection's decoder, frames out are
    written as they are; the transport's water marks drive ``drain`` (only a paused transport
    makes a future)."""

    __slots__ = ("_conn", "_transport", "_drain", "_write_paused", "gone")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._transport: asyncio.Transport | None = None
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio's callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass; it has the same methods.
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._conn.received(data)

    def eof_received(self) -> bool:
        return False   # a half-closed push connection is a closed one: let asyncio close it

    def connection_lost(self, exc: BaseException | None) -> None:
        self._release_drain()
        if not self.gone.done():
            self.gone.set_result(None)
        self._conn.lost()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_drain()

    def _release_drain(self) -> None:
        waiter, self._drain = self._drain, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the connection's face
    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    async def drain(self) -> None:
        if not self._write_paused or self.gone.done():
            return
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drain)

    def pause_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self, code: str) -> None:
        # transport.close flushes what is buffered (our CLOSE) first.
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def wait_gone(self) -> None:
        await asyncio.shield(self.gone)


class _WsWire:
    """A WebSocket (§13): one message per frame, read by a task of its own that waits while
    the connection's reading is paused (the role's receive queue then fills and it stops
    reading TCP: backpressure)."""

    __slots__ = ("_conn", "_ws", "_role", "_text", "_reader", "_resume", "_drain", "_closing",
                 "gone")

    def __init__(self, conn: _Connection, ws: ClientWebSocket, text: bool) -> None:
        role = ws._role
        assert role is not None
        self._conn = conn
        self._ws = ws
        self._role: WebSocketRole = role
        self._text = text
        self._resume = asyncio.Event()
        self._resume.set()
        self._drain: Any = None        # the role's drain awaitable while writing is paused
        self._closing: Any = None      # the role's close future, awaited in wait_gone
        loop = asyncio.get_running_loop()
        self.gone: asyncio.Future[None] = loop.create_future()
        self._reader = loop.create_task(self._read(), name="cyserve.push.client: ws reader")

    async def _read(self) -> None:
        role = self._role
        expect = str if self._text else bytes
        try:
            while True:
                if not self._resume.is_set():
                    await self._resume.wait()
                message = await role.receive()
                if type(message) is not expect:
                    # §13: the server answers in the client's message type; the other type is
                    # a protocol_error.
                    self._conn.violated("protocol_error", "a WebSocket message of the other type")
                    continue   # the connection closes the socket; receive() raises then
                self._conn.received(message)
        except WebSocketDisconnect as exc:
            if exc.code == 1009:
                # RFC 6455 §7.4.1: our WebSocket layer refused a message over max_frame_bytes.
                self._conn.violated("too_large", "a message over max_frame_bytes")
        finally:
            if not self.gone.done():
                self.gone.set_result(None)
            self._conn.lost()

    def write(self, data: bytes) -> None:
        try:
            # The role's own send never waits; above the write high water it returns the drain
            # awaitable, kept for drain().
            waiter = self._role.send(data, self._text)
        except WebSocketDisconnect:
            return   # the reader sees the end and reports it
        if waiter is not None:
            self._drain = waiter

    async def drain(self) -> None:
        waiter = self._drain
        if waiter is None or not self._role.write_paused:
            self._drain = None
            return
        try:
            await waiter
        except WebSocketDisconnect:
            pass   # gone while we waited: the reader reports it

    def pause_reading(self) -> None:
        self._resume.clear()

    def resume_reading(self) -> None:
        self._resume.set()

    def close(self, code: str) -> None:
        self._resume.set()
        if self._closing is None:
            # §13's mapping of push close codes to WebSocket ones, as the server does it.
            self._closing = self._role.close(_WS_CLOSE.get(code, 1008), code)

    def abort(self) -> None:
        self._resume.set()
        self._role.abort()

    async def wait_gone(self) -> None:
        await asyncio.shield(self._reader)
        closing = self._closing if self._closing is not None else self._role.wait_closed()
        try:
            await asyncio.shield(closing)
        except WebSocketDisconnect:
            pass   # how it closed was reported already; gone is all this waits for


_Wire = Union[_TcpWire, _WsWire]


# ---------------------------------------------------------------------- one connection
class _Connection:
    """One connection's session rules (§5, §7, §10): the order of frames, calls in flight, the
    heartbeat and idle timer.  The session that outlives it (ids, sequence numbers, the queue)
    is the ``PushClient``'s."""

    __slots__ = ("_owner", "_loop", "wire", "_decoder", "framing", "state", "ready", "calls",
                 "_timer", "_last_recv", "_last_sent", "_heartbeat_s", "_idle_timeout_s",
                 "max_send_bytes", "_ping_id", "_paused", "ended")

    def __init__(self, owner: PushClient, framing: int, max_frame_bytes: int) -> None:
        self._owner = owner
        self._loop = asyncio.get_running_loop()
        self.wire: _Wire | None = None
        self._decoder = FrameDecoder(max_frame_bytes, framing, client=True)
        self.framing = framing
        self.state = _C_HELLO
        self.ready: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self.calls: dict[int, asyncio.Future[Any]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._last_recv = self._last_sent = self._loop.time()
        self._heartbeat_s = 0.0
        self._idle_timeout_s = 0.0
        self.max_send_bytes = max_frame_bytes
        self._ping_id = 0
        self._paused = False
        self.ended: PushClosed | PushRefused | None = None

    # -- writing
    def send(self, kind: int, id: int = 0, name: str = "", payload: object = None,
             flags: int = 0) -> None:
        self.write(encode(kind, id, name, payload, flags, self.framing))

    def write(self, frame: bytes) -> None:
        # After our CLOSE nothing more is sent (§9), so only HELLO and OPEN write.
        if self.wire is not None and self.state <= _C_OPEN:
            self._last_sent = self._loop.time()
            self.wire.write(frame)

    # -- reading
    def received(self, data: bytes | str) -> None:
        if self.state == _C_DONE:
            return
        self._last_recv = self._loop.time()
        for frame in self._decoder.feed(data):
            if self.state == _C_DONE:
                return
            if type(frame) is Violation:
                self.violated(frame.code, frame.reason)
                return
            assert type(frame) is Frame
            self._frame(frame)

    def _frame(self, frame: Frame) -> None:
        kind = frame.kind
        if self.state == _C_HELLO:
            # §5: the server's first frame is WELCOME or REFUSE, or (a bad HELLO) ERROR
            # too_large + CLOSE, or CLOSE.
            if kind == KIND_WELCOME:
                self._welcome(frame.payload)
            elif kind == KIND_REFUSE:
                assert isinstance(frame.payload, str)
                self.end(PushRefused(frame.name, frame.payload))
            elif kind == KIND_CLOSE:
                assert isinstance(frame.payload, str)
                self.end(PushClosed(frame.name, frame.payload))
            elif kind != KIND_ERROR or frame.id != 0:
                self.violated("protocol_error", f"a {KIND_NAMES[kind]} frame before WELCOME")
            return
        if kind == KIND_PUSH:
            self._owner._pushed(self, frame)
        elif kind == KIND_REPLY:
            call = self.calls.pop(frame.id, None)
            if call is not None and not call.done():
                self._owner._replied(self, call, frame.payload)
        elif kind == KIND_ERROR:
            if frame.id != 0:
                call = self.calls.pop(frame.id, None)
                if call is not None and not call.done():
                    assert isinstance(frame.payload, str)
                    call.set_exception(PushCallError(frame.name, frame.payload))
            # An ERROR with id 0 is connection-level; the CLOSE that follows it ends us.
        elif kind == KIND_GAP:
            assert isinstance(frame.payload, int)
            self._owner._gapped(self, frame.id, frame.payload)
        elif kind == KIND_PING:
            self.send(KIND_PONG, frame.id)   # §10: every PING gets its PONG, same id
        elif kind == KIND_PONG:
            pass   # §10: any byte already proved the server alive; the round trip is unused
        elif kind == KIND_CLOSE:
            assert isinstance(frame.payload, str)
            # §9: a client never answers a server's CLOSE.
            self.end(PushClosed(frame.name, frame.payload))
        else:   # a second WELCOME, a REFUSE after WELCOME (§5)
            self.violated("protocol_error", f"a {KIND_NAMES[kind]} frame after WELCOME")

    def _welcome(self, payload: object) -> None:
        why = self._owner._check_welcome(payload)
        if why:
            self.violated("protocol_error", why)
            return
        assert isinstance(payload, dict)
        self.state = _C_OPEN
        self._heartbeat_s = float(payload["heartbeat_s"])
        self._idle_timeout_s = float(payload["idle_timeout_s"])
        # §11: the limit holds both ways; we never send more than the server takes.
        self.max_send_bytes = int(payload["max_frame_bytes"])
        # The session takes the WELCOME now, before the frames that follow it in this read
        # (a resume's GAP and pushes) are looked at.
        self._owner._welcomed(self, payload)
        self._schedule()
        self.ready.set_result(payload)

    # -- timers (§10): one lazy timer for the heartbeat and the idle watch
    def _schedule(self) -> None:
        when = self._last_sent + self._heartbeat_s
        if not self._paused:
            when = min(when, self._last_recv + self._idle_timeout_s)
        self._timer = self._loop.call_at(when, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.state != _C_OPEN:
            return
        now = self._loop.time()
        if not self._paused and now - self._last_recv >= self._idle_timeout_s:
            # §10: the client closes a silent server and reconnects with resume.
            self.send(KIND_CLOSE, 0, "idle_timeout",
                      f"no byte from the server for {self._idle_timeout_s:g} s")
            self.end(PushClosed("idle_timeout", "the server went silent"))
            return
        if now - self._last_sent >= self._heartbeat_s:
            self._ping_id += 1
            self.send(KIND_PING, self._ping_id)
        self._schedule()

    def pause_reading(self) -> None:
        if not self._paused and self.wire is not None:
            self._paused = True
            self.wire.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.wire is not None:
            self._paused = False
            # The server's silence while we did not read is not its idleness (§10).
            self._last_recv = self._loop.time()
            self.wire.resume_reading()

    # -- the end
    def violated(self, code: str, reason: str) -> None:
        """The server broke §3-§5 or §11: say so with CLOSE (§5, §11) and stop reading."""
        if self.state == _C_DONE:
            return
        self.send(KIND_CLOSE, 0, code, reason)
        self.end(PushClosed(code, reason))

    def lost(self) -> None:
        # §9: a connection lost without CLOSE is treated like going_away.
        self.end(PushClosed("going_away", "the connection was lost"))

    def end(self, error: PushClosed | PushRefused) -> None:
        """Once: stop the timer, fail the calls in flight, close the wire, report."""
        if self.state == _C_DONE:
            return
        was = self.state
        self.state = _C_DONE
        self.ended = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        calls, self.calls = self.calls, {}
        for call in calls.values():
            if not call.done():
                # §7.1: the server may have run it; never resent, the caller decides.
                call.set_exception(PushClosed(error.code, error.text))
        if self.wire is not None:
            self.wire.close(error.code)
        if was == _C_HELLO:
            if not self.ready.done():
                self.ready.set_exception(error)
        else:
            self._owner._ended(self, error)

    def abort(self) -> None:
        if self.wire is not None:
            self.wire.abort()


