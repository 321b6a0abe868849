"""The WebSocket ``Link``: a push connection carried by a cyserve WebSocket (docs/push-protocol.md
§13), for ``Hub.serve_websocket``.

One WebSocket message is one frame (§2): binary messages carry binary frames without their
length prefix, text messages JSON objects.  The type of the client's first message chooses the
framing for the connection; a message of the other type later is a ``protocol_error``.  The
link owns the bytes, as the TCP ``PushRole`` does: the frame decoder, writes into the
WebSocket, the input-idle watch, and the WebSocket close that follows the push CLOSE (1000 for
``normal``, 1001 for ``going_away``, 1009 for ``too_large``, 1008 for every other code, the
push code as the reason).

Differences from the TCP link, each forced by what a WebSocket hands over: the idle watch is
re-armed per message, not per byte (the WebSocket layer delivers whole messages); the server's
own WebSocket shutdown (close 1001 when the HTTP server drains) reaches the hub as a lost
connection, so ``Hub.stop`` (which the App's drain runs first) is what says CLOSE
``going_away``.
"""
from __future__ import annotations

import asyncio
from typing import Any, Final

import orjson

from cyserve._core.push.frames import (
    FRAMING_AUTO, FRAMING_WS_BINARY, FRAMING_WS_TEXT, KIND_CLOSE, KIND_REFUSE,
    VIOLATION_PROTOCOL_ERROR, FrameDecoder, PushTemplate, Violation,
)
from cyserve.errors import WebSocketDisconnect
from cyserve.push.link import LinkHandler

__all__ = ["WebSocketLink"]

# §13: the WebSocket close code after a push CLOSE (RFC 6455 §7.4.1).
_WS_CODES: Final = {"normal": 1000, "going_away": 1001, "too_large": 1009}
_WS_POLICY: Final = 1008
_CLOSE_TEXT_PREFIX: Final = b'{"t":"close"'
_REFUSE_TEXT_PREFIX: Final = b'{"t":"refuse"'


class WebSocketLink:
    """A push connection over an accepted ``cyserve.websocket.WebSocket``; ``run()`` reads its
    messages until it closes (the route's handler awaits it)."""

    __slots__ = ("_ws", "_role", "_loop", "_max_frame_bytes", "_decoder", "_handler", "_framing",
                 "_text", "_sent", "_closing", "_lost", "_violated", "_resume", "_idle_s",
                 "_idle_handle", "_last_input", "_watching", "_close_code", "_close_reason",
                 "_abort_handle")

    def __init__(self, ws: Any, max_frame_bytes: int) -> None:
        role = ws._role
        if role is None:
            raise RuntimeError("the WebSocket is not accepted yet")
        self._ws = ws
        self._role = role
        self._loop = asyncio.get_running_loop()
        self._max_frame_bytes = max_frame_bytes
        self._decoder: FrameDecoder | None = None
        self._handler: LinkHandler | None = None
        self._framing = FRAMING_AUTO
        self._text = False
        self._sent = False
        self._closing = False
        self._lost = False
        self._violated = False
        # Set while reading is paused: the reader waits on it.
        self._resume: asyncio.Future[None] | None = None
        self._idle_s = 0.0
        self._idle_handle: asyncio.TimerHandle | None = None
        self._last_input = self._loop.time()
        self._watching = False
        self._close_code = 1000
        self._close_reason = ""
        self._abort_handle: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ Link
    @property
    def framing(self) -> int:
        return self._framing

    @property
    def peer(self) -> Any:
        return self._ws.client

    @property
    def closing(self) -> bool:
        return self._closing or self._lost

    def start(self, handler: LinkHandler) -> None:
        if self._handler is not None:
            raise RuntimeError("the link is started already")
        self._handler = handler

    def send(self, frame: bytes) -> None:
        if self._closing or self._lost:
            return
        if self._text:
            if frame.startswith(_CLOSE_TEXT_PREFIX) or frame.startswith(_REFUSE_TEXT_PREFIX):
                self._note_close(frame)
        elif frame[0] == KIND_CLOSE or frame[0] == KIND_REFUSE:
            self._note_close(frame)
        self._write(frame)

    def send_push(self, template: PushTemplate, seq: int) -> None:
        if self._closing or self._lost:
            return
        self._write(template.frame(seq))

    def buffered(self) -> int:
        if self._lost:
            return 0
        return int(self._role.buffered_bytes)

    def take_sent(self) -> bool:
        sent = self._sent
        self._sent = False
        return sent

    def expect_idle(self, seconds: float) -> None:
        self._idle_s = seconds
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if seconds > 0 and not self._lost:
            self._last_input = self._loop.time()
            self._arm_idle(seconds)

    def pause_reading(self) -> None:
        if self._resume is None:
            self._resume = self._loop.create_future()
            # Paused reading is not the peer's silence.
            if self._idle_handle is not None:
                self._idle_handle.cancel()
                self._idle_handle = None

    def resume_reading(self) -> None:
        resume = self._resume
        if resume is not None:
            self._resume = None
            if not resume.done():
                resume.set_result(None)
            if self._idle_s > 0 and not self._lost:
                self._last_input = self._loop.time()
                self._arm_idle(self._idle_s)

    def close(self, timeout_s: float) -> None:
        if self._closing or self._lost:
            return
        self._closing = True
        self._stop_idle()
        try:
            waited = self._role.close(self._close_code, self._close_reason)
        except Exception:
            self._role.abort()
            return
        waited.add_done_callback(_retrieve)
        # The WebSocket's close handshake has its own bound (close_timeout_s of its limits);
        # this one holds whatever the handshake does.
        self._abort_handle = self._loop.call_later(max(0.0, timeout_s) + 1.0, self.abort)

    def abort(self) -> None:
        self._closing = True
        self._stop_idle()
        if not self._lost:
            self._role.abort()

    # ------------------------------------------------------------------ reading
    async def run(self) -> None:
        """Read messages and report them to the handler until the WebSocket is gone."""
        role = self._role
        try:
            while True:
                resume = self._resume
                if resume is not None:
                    await resume
                    continue
                message = await role.receive()
                if self._violated or self._closing:
                    continue  # after a violation or our CLOSE nothing more is decoded (§11)
                self._last_input = self._loop.time()
                self._message(message)
        except WebSocketDisconnect:
            pass
        finally:
            self._gone()

    def _message(self, message: str | bytes) -> None:
        decoder = self._decoder
        text = type(message) is str
        if decoder is None:
            # §2: the type of the client's first message chooses the framing.
            self._framing = FRAMING_WS_TEXT if text else FRAMING_WS_BINARY
            self._text = text
            decoder = self._decoder = FrameDecoder(self._max_frame_bytes, self._framing)
        elif text != self._text:
            self._violation(Violation(VIOLATION_PROTOCOL_ERROR,
                                      "a text message on a binary connection" if text
                                      else "a binary message on a text connection"))
            return
        decoded = decoder.feed(message)
        handler = self._handler
        assert handler is not None
        item = decoded[0]
        if isinstance(item, Violation):
            self._violation(item)
        else:
            handler.link_frames(decoded)  # type: ignore[arg-type]  # frames only: one message

    def _violation(self, violation: Violation) -> None:
        self._violated = True
        assert self._handler is not None
        self._handler.link_violation(violation)

    def _gone(self) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._stop_idle()
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        resume = self._resume
        if resume is not None and not resume.done():
            resume.cancel()
        handler = self._handler
        self._handler = None
        if handler is not None:
            handler.link_lost()

    # ------------------------------------------------------------------ writing
    def _write(self, frame: bytes) -> None:
        self._sent = True
        try:
            waiting = self._role.send(frame, self._text)
        except WebSocketDisconnect:
            self._closing = True
            return
        if waiting is not None and not self._watching:
            # Above the write high water: link_drained once it fell to the low one.
            self._watching = True
            waiting.add_done_callback(self._drained)

    def _drained(self, future: asyncio.Future[None]) -> None:
        self._watching = False
        if future.cancelled() or future.exception() is not None:
            return
        handler = self._handler
        if handler is not None and not self._closing:
            handler.link_drained()

    def _note_close(self, frame: bytes) -> None:
        """The CLOSE (or REFUSE) going out decides the WebSocket close that follows (§13)."""
        if self._text:
            try:
                raw = orjson.loads(frame)
            except orjson.JSONDecodeError:
                return
            kind = raw.get("t")
            code = raw.get("name", "")
            is_close, is_refuse = kind == "close", kind == "refuse"
        else:
            is_close, is_refuse = frame[0] == KIND_CLOSE, frame[0] == KIND_REFUSE
            code = frame[11:11 + frame[10]].decode("utf-8", "replace")
        if not (is_close or is_refuse):
            return
        self._close_code = _WS_CODES.get(code, _WS_POLICY) if is_close else _WS_POLICY
        # The push code as the reason: an identifier of at most 64 bytes by convention, within
        # the 123 a close reason may hold (RFC 6455 §5.5).
        self._close_reason = code[:64]

    # ------------------------------------------------------------------ the idle watch (§10)
    def _arm_idle(self, seconds: float) -> None:
        self._idle_handle = self._loop.call_at(self._last_input + seconds, self._idle_check)

    def _idle_check(self) -> None:
        # One timer per connection, moved at most once per idle period: a message re-arms it
        # only by moving _last_input.
        self._idle_handle = None
        if self._lost or self._closing or self._resume is not None or self._idle_s <= 0:
            return
        due = self._last_input + self._idle_s
        if self._loop.time() < due:
            self._idle_handle = self._loop.call_at(due, self._idle_check)
            return
        self._idle_s = 0.0
        handler = self._handler
        if handler is not None:
            handler.link_idle()

    def _stop_idle(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def __repr__(self) -> str:
        return f"<WebSocketLink peer={self.peer} framing={self._framing}>"


def _retrieve(future: asyncio.Future[Any]) -> None:
    # The close's wait is nobody's to await: take its outcome so none is reported as lost.
    if not future.cancelled():
        future.exception()
