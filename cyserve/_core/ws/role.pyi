"""One WebSocket connection (RFC 6455) on a ``Stream``, for either side (``cyserve._core.ws.role``).

A server attaches it in the ``take_over`` of ``conn.upgrade("websocket", ...)``; a client after
the ``101`` its HTTP client role left on the stream (``ClientRole.start(..., upgrade=True)``).
The bytes after the response head are its first input.  ``cyserve.websocket.WebSocket`` is the
handler-facing API over it.
"""
import asyncio
from typing import Any, Awaitable, Coroutine, Final, Iterable

from cyserve._core.io.stream import Stream
from cyserve._core.ws.deflate import Deflater, Inflater
from cyserve.config import WebSocketLimits

PY_WS_OPEN: Final[int]
PY_WS_CLOSING: Final[int]
PY_WS_CLOSED: Final[int]
PY_WS_LOST: Final[int]

class WebSocketRole:
    """The connection's frames, pings, close handshake and flow control (see role.pxd)."""

    stream: Stream
    is_client: bool
    state: int
    """``PY_WS_OPEN``, ``PY_WS_CLOSING`` (our close frame went), ``PY_WS_CLOSED`` (handshake
    done or failed; TCP closing) or ``PY_WS_LOST``."""
    handler_task: asyncio.Task[Any] | None
    """Cancelled when the server aborts its connections (the shutdown's grace period ran out)."""

    def receive(self) -> Awaitable[str | bytes]:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Messages already queued come at once (no future), also after the connection closed;
        then ``WebSocketDisconnect(code, reason)``.  Taking a message from a full queue resumes
        reading.  One receiver at a time: ``RuntimeError`` while another waits."""
    def receiving(self) -> Coroutine[Any, Any, str | bytes]:
        """``receive()`` for the handler API (``WebSocketConnection.receive``): a coroutine-shaped
        awaitable that does nothing until awaited, on the awaiting thread, and then needs no
        Python frame: a queued message is its result at once, else it waits on the receive
        future.  Closing it (or throwing into it) while it waits cancels that future, so a later
        message stays queued."""
    def iterating(self) -> Coroutine[Any, Any, str | bytes]:
        """``receiving()`` for ``async for``: ``WebSocketDisconnect`` with a normal close code
        (1000, 1001, 1005: RFC 6455 §7.4.1) ends the iteration with ``StopAsyncIteration``."""
    def sending(self, message: str | bytes | bytearray | memoryview, text: bool = ...
                ) -> Coroutine[Any, Any, None]:
        """``send(message, text)`` for the handler API: a coroutine-shaped awaitable that sends
        when first awaited (on the awaiting thread) and then, only if the peer is slow, waits
        on the drain; the same errors as ``send``, raised by that first step."""
    def send(self, message: str | bytes | bytearray | memoryview, text: bool = ...
             ) -> Awaitable[None] | None:
        """Send one message (``str``: text; bytes-like: binary, or text with ``text``, when the
        caller knows it is UTF-8); compressed with permessage-deflate when negotiated and at
        least ``compression_min_bytes`` long.

        Returns None, or while the transport is above ``write_high_water`` an awaitable that is
        done again at ``write_low_water``.  Raises ``WebSocketDisconnect`` once a close frame went
        either way or the connection is gone."""
    def send_frame_bytes(self, frame: bytes, wait: bool = ...) -> Awaitable[None] | None:
        """Write a frame built by ``encode_message`` (one frame for many connections); the same
        return and errors as ``send``, but with ``wait`` false always None (no drain future is
        made for a caller that will not await it).  A server's frames are never masked, a
        client's always are: build the frame with ``mask`` matching ``is_client``."""
    def ping(self, data: bytes = ...) -> asyncio.Future[float]:
        """Send a ping (at most 125 bytes; empty sends 4 random bytes); the future resolves with
        the round trip in seconds when its pong arrives, or fails with ``WebSocketDisconnect``."""
    def close(self, code: int = ..., reason: str = ...) -> asyncio.Future[None]:
        """Start the close handshake with ``code`` and ``reason`` (once; a later call only waits)
        and return ``wait_closed()``.  ``ValueError`` for a code no endpoint may send (RFC 6455
        §7.4) or a reason over 123 bytes."""
    def abort(self) -> None:
        """Drop the connection without a close handshake."""
    def wait_closed(self) -> asyncio.Future[None]:
        """Resolved once the connection is gone."""
    @property
    def close_code(self) -> int | None:
        """The peer's close code if it sent a close frame, else the one this side sent, else
        1006 once the connection dropped; None while open.  1005: the peer's frame had none."""
    @property
    def close_reason(self) -> str | None: ...
    @property
    def buffered_bytes(self) -> int:
        """Bytes written and not yet taken by the peer."""
    @property
    def write_paused(self) -> bool:
        """True while ``send`` would return an awaitable (the peer is slow)."""
    @property
    def queued(self) -> int:
        """Messages received and not taken yet."""
    @property
    def reading_held(self) -> bool:
        """Reading is paused because ``max_receive_queue`` messages wait."""
    @property
    def compressed(self) -> bool:
        """permessage-deflate is on for this connection."""

def websocket_role(stream: Stream, limits: WebSocketLimits, is_client: bool = ...,
                   inflater: Inflater | None = ..., deflater: Deflater | None = ...) -> WebSocketRole:
    """Hand ``stream`` over to a new ``WebSocketRole`` (``Stream.switch``: the unread bytes are
    its first input) with ``limits``; ``is_client`` masks what it sends and expects unmasked
    frames; ``inflater``/``deflater`` from the permessage-deflate negotiation
    (``deflate.server_negotiate`` / ``client_accept``).  ``WebSocketDisconnect(1006)`` when the
    stream is already closing."""

# The handler API's per-message calls (``WebSocketConnection.receive``, ``send`` and
# ``__anext__`` are these, bound as methods); ``ws`` is any object with a ``_role`` (a
# ``WebSocketRole``, or None before the connection is open: ``RuntimeError``).
def connection_receive(ws: Any) -> Coroutine[Any, Any, str | bytes]:
    """The next message (``str``: text, ``bytes``: binary): ``WebSocketRole.receiving``."""
def connection_send(ws: Any, message: str | bytes | bytearray | memoryview) -> Coroutine[Any, Any, None]:
    """Send one message (``str``: text, bytes-like: binary): ``WebSocketRole.sending``."""
def connection_anext(ws: Any) -> Coroutine[Any, Any, str | bytes]:
    """The next message of ``async for``: ``WebSocketRole.iterating``."""

def broadcast_message(sockets: Iterable[Any], message: str | bytes) -> list[Any]:
    """``cyserve.websocket.broadcast``: one frame to every open socket below its write high
    water, corked and written two loop turns later (one write per socket for every broadcast
    made until then); returns the sockets skipped as slow."""

def encode_message(message: str | bytes | bytearray | memoryview, mask: bool = ...) -> bytes:
    """One whole, uncompressed frame of ``message`` (text for ``str``), masked with a fresh key
    when ``mask`` (a client's)."""
