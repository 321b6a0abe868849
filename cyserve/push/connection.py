"""One push connection's protocol state: the ``LinkHandler`` of a ``Link`` (TCP or WebSocket),
and the ``conn`` a hub's handlers are given.

It owns what docs/push-protocol.md gives the connection role (§16): the order of frames (§5),
HELLO checks and WELCOME/REFUSE (§6), CALL dispatch and its REPLY/ERROR (§7), ACKs (§8.2),
PING/PONG (§10), CLOSE (§9), the hello timeout, violations turned into ERROR/CLOSE (§11), the
calls in flight, and the slow-consumer policy at its outbox (§8.6).  The hub owns the session
(numbers, history, groups) and decides what a close does to it; the link owns the bytes.

States (a connection only moves forward)::

    HELLO --HELLO ok--> AUTH --auth hook accepts--> OPEN --CLOSE either way--> CLOSING --> LOST
      |                  |--REFUSE-------------------------------------------> CLOSING
      '--bad first frame, hello timeout, shutdown -----------------------------> CLOSING

Invariants: nothing is written before the client's first frame, nor after a CLOSE or REFUSE;
``_session`` is set at WELCOME and only then; the hub hears of the session's fate once
(``Hub._detach``), when this side closes or, failing that, when the link is lost.  A HELLO
called off in AUTH (the server stops, the hello times out) says its last word once its
authentication task has ended: that task puts back what a resume took (``_call_off``).
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Final

from cyserve._core.push.frames import (
    FRAMING_AUTO, FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY, KIND_ACK, KIND_CALL,
    KIND_CLOSE, KIND_ERROR, KIND_GAP, KIND_HELLO, KIND_PING, KIND_PONG, KIND_REFUSE, KIND_REPLY,
    KIND_WELCOME, VERSION, VIOLATION_TOO_LARGE, Frame, PushTemplate, Violation, encode,
)
from cyserve.errors import PushDenied
from cyserve.push.codecs import JSON, Codec, for_frame
from cyserve.push.link import Link
from cyserve.push.session import Session, template_key

if TYPE_CHECKING:
    from cyserve.push.hub import Hub

__all__ = ["Connection"]

_log = logging.getLogger("cyserve.push")

_HELLO, _AUTH, _OPEN, _CLOSING, _LOST = range(5)

# §3.3: codes are lowercase identifiers by convention; an application's PushDenied code that
# is not one is answered as "denied" rather than sent as it is.
_CODE: Final = re.compile(r"[a-z0-9_]{1,64}\Z")
_MAX_TEXT_CHARS: Final = 1024
# While pushes are held back, how often the queue is looked at again: link_drained only comes
# after the transport passed its high water mark, which a queue_bytes below it never makes it do.
_HELD_RETRY_S: Final = 0.05
# What a frame's size (§11) does not count: a binary length prefix, a JSON line's newline.
_FRAMING_EXTRA: Final = {FRAMING_BINARY: 4, FRAMING_JSON_LINES: 1}


class Connection:
    """One client connection, from its first frame to its last (see the module docstring).

    What handlers see: ``client_id`` (None until WELCOME), ``identity`` (what ``on_connect``
    returned), ``peer``, ``transport`` (``"tcp"`` or ``"websocket"``), ``codec`` (its name),
    ``framing`` (``FRAMING_*`` of ``cyserve._core.push.frames``), ``groups``, and ``join``,
    ``leave`` and ``send``, which act on this client's session through the hub.
    """

    __slots__ = ("_hub", "link", "client_id", "identity", "peer", "transport", "codec",
                 "framing", "codec_obj", "tkey", "held", "_session", "_state", "_calls",
                 "_backlog", "_timer", "_auth", "_held_gap", "_held_bytes", "_held_timer",
                 "_ping_id", "_lost", "close_code")

    def __init__(self, hub: Hub, link: Link, transport: str) -> None:
        self._hub = hub
        #: The link; the hub's fan-out writes through it directly (its hot path).
        self.link = link
        self.client_id: str | None = None
        self.identity: Any = None
        self.peer = link.peer
        self.transport = transport
        self.codec = JSON.name
        self.codec_obj: Codec = JSON
        self.framing = link.framing
        #: ``session.template_key`` of this framing and codec (set at WELCOME).
        self.tkey = -1
        #: Pushes held back under the ``drop_oldest`` policy (§8.6), oldest first, as
        #: ``(first seq, last seq, template or None for a gap, size)``; None while writing.
        self.held: deque[tuple[int, int, PushTemplate | None, int]] | None = None
        self._session: Session | None = None
        self._state = _HELLO
        self._calls: set[asyncio.Task[None]] | None = None
        self._backlog: deque[Frame] | None = None
        self._auth: asyncio.Task[None] | None = None
        self._held_gap: tuple[int, int] | None = None
        self._held_bytes = 0
        self._held_timer: asyncio.TimerHandle | None = None
        self._ping_id = 0
        self._lost = False
        #: How the connection ended: the CLOSE code this side sent, or the client's; going_away
        #: when it was lost without one (§9).  None while open.
        self.close_code: str | None = None
        # §10: the HELLO, and the whole handshake with it, within hello_timeout_s.
        self._timer: asyncio.TimerHandle | None = hub.loop.call_later(
            hub.limits.hello_timeout_s, self._hello_expired)

    # ------------------------------------------------------------------ what handlers use
    @property
    def groups(self) -> frozenset[str]:
        session = self._session
        return frozenset(session.groups) if session is not None else frozenset()

    @property
    def open(self) -> bool:
        """WELCOME went out and no CLOSE either way yet."""
        return self._state == _OPEN

    @property
    def authenticating(self) -> bool:
        """The HELLO was accepted and the WELCOME (or REFUSE) is not written yet."""
        return self._state == _AUTH

    def _own_id(self) -> str:
        if self.client_id is None:
            raise RuntimeError("the connection has no client id before WELCOME")
        return self.client_id

    async def join(self, group: str) -> None:
        await self._hub.join(self._own_id(), group)

    async def leave(self, group: str) -> None:
        await self._hub.leave(self._own_id(), group)

    async def send(self, message: Any, ack: bool = False) -> bool:
        return await self._hub.send(self._own_id(), message, ack=ack)

    # ------------------------------------------------------------------ LinkHandler
    def link_frames(self, frames: list[Frame]) -> None:
        for frame in frames:
            backlog = self._backlog
            if backlog is not None:
                backlog.append(frame)
                continue
            state = self._state
            if state == _OPEN:
                if frame.kind == KIND_CALL and self._calls is not None \
                        and len(self._calls) >= self._hub.limits.max_calls_in_flight:
                    # max_calls_in_flight: the frames already read wait here, and the kernel's
                    # buffers push back on the client until a call ends.
                    self._backlog = deque((frame,))
                    self.link.pause_reading()
                    continue
                self._frame(frame)
            elif state == _HELLO:
                self._hello(frame)
            elif state == _AUTH:
                # §5: nothing from the client between its HELLO and the WELCOME or REFUSE.
                self._close("protocol_error", "a frame before WELCOME")
            # CLOSING, LOST: the last frame was said; what follows is not read (§9).

    def link_violation(self, violation: Violation) -> None:
        if self._state >= _CLOSING:
            return
        self.framing = self.link.framing
        if violation.kind == VIOLATION_TOO_LARGE:
            # §11: ERROR too_large (id 0) and CLOSE too_large.
            self._send(encode(KIND_ERROR, 0, "too_large", violation.reason, 0, self.framing))
        self._close(violation.code, violation.reason)

    def link_idle(self) -> None:
        # §10: no byte from the client for idle_timeout_s.
        self._close("idle_timeout", f"no bytes for {self._hub.limits.idle_timeout_s:g} s")

    def link_drained(self) -> None:
        if self.held is not None and self._state == _OPEN:
            self.flush_held()

    def link_shutdown(self, abort: bool) -> None:
        if abort:
            self.abort()
        else:
            self.shutdown()

    def link_lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        if self.close_code is None:
            self.close_code = "going_away"
        state = self._state
        self._state = _LOST
        self._stop_timer()
        if self._auth is not None:
            self._auth.cancel()
            self._auth = None
        calls = self._calls
        if calls:
            for task in calls:
                task.cancel()
        self._backlog = None
        self.held = None
        self._stop_held_timer()
        # A connection lost without CLOSE is treated like going_away (§9): the session stays.
        self._hub._lost(self, state == _OPEN)

    # ------------------------------------------------------------------ HELLO (§6.1)
    def _hello(self, frame: Frame) -> None:
        self.framing = self.link.framing
        if frame.kind != KIND_HELLO:
            self._close("protocol_error", "HELLO must be the first frame")
            return
        self._state = _AUTH
        if frame.name != VERSION:
            self.refuse("unsupported_version", f"this server speaks {VERSION}")
            return
        hello: dict[str, Any] = frame.payload  # type: ignore[assignment]  # a dict by §4
        name = hello.get("codec", JSON.name)
        if type(name) is not str:
            self.refuse("bad_hello", "codec must be a string")
            return
        codec = self._hub.codecs.get(name)
        binary = self.framing == FRAMING_BINARY or self.framing == FRAMING_WS_BINARY
        if codec is None or (codec is not JSON and not binary):
            # §6.3: bytes and xml exist in the binary framings only.
            self.refuse("unsupported_codec", f"codecs here: {', '.join(self._hub.codecs)}"
                        if codec is None else "this codec needs a binary framing")
            return
        token = hello.get("resume_token")
        last_seq = hello.get("last_seq")
        if token is not None:
            if type(token) is not str:
                self.refuse("bad_hello", "resume_token must be a string")
                return
            if type(last_seq) is not int or last_seq < 0:
                self.refuse("bad_hello", "resume_token needs last_seq, an integer >= 0")
                return
        self.codec = codec.name
        self.codec_obj = codec
        self.tkey = template_key(self.framing, codec.name)
        resume_from = last_seq if type(last_seq) is int and token is not None else 0
        self._auth = self._hub._admit(self, hello.get("credentials"), token, resume_from)

    def refuse(self, code: str, text: str) -> None:
        """REFUSE ``code`` (§6.4), the server's last frame; then close."""
        if self._state >= _CLOSING:
            return
        self._state = _CLOSING
        self._stop_timer()
        self._auth = None
        self._send(encode(KIND_REFUSE, 0, code, text, 0, self.framing))
        self.link.close(self._hub.limits.close_timeout_s)

    def welcome(self, session: Session, token: str, resumed: bool, next_seq: int) -> None:
        """WELCOME (§6.2): the session is attached to this connection from now on."""
        limits = self._hub.limits
        self._state = _OPEN
        self._stop_timer()
        self._auth = None
        self._session = session
        self.client_id = session.client_id
        self.identity = session.identity
        self._send(encode(KIND_WELCOME, 0, VERSION, {
            "client_id": session.client_id, "resume_token": token, "codec": self.codec,
            "resumed": resumed, "next_seq": next_seq, "heartbeat_s": limits.heartbeat_s,
            "idle_timeout_s": limits.idle_timeout_s, "max_frame_bytes": limits.max_frame_bytes,
            "resume_window_s": limits.resume_window_s,
        }, 0, self.framing))
        self.link.expect_idle(limits.idle_timeout_s)

    def _hello_expired(self) -> None:
        self._timer = None
        if self._state <= _AUTH:
            self._call_off(self._hello_late)

    def _hello_late(self) -> None:
        if self._state > _AUTH:
            return
        if self.link.framing == FRAMING_AUTO:
            # §10: silently when not even the first byte came (the framing is unknown).
            self._state = _CLOSING
            self.link.close(0)
            return
        self.framing = self.link.framing
        self._close("idle_timeout", f"no HELLO within {self._hub.limits.hello_timeout_s:g} s")

    # ------------------------------------------------------------------ after WELCOME
    def _frame(self, frame: Frame) -> None:
        kind = frame.kind
        if kind == KIND_CALL:
            self._call(frame)
        elif kind == KIND_ACK:
            session = self._session
            assert session is not None
            if not session.ack(frame.id):
                self._close("protocol_error", "an ACK for a push not sent")
        elif kind == KIND_PING:
            self._send(encode(KIND_PONG, frame.id, "", None, 0, self.framing))
        elif kind == KIND_PONG:
            pass  # §10: a PONG is the answer to our PING; one with an unknown id is ignored
        elif kind == KIND_CLOSE:
            # §9: answer CLOSE normal and close; the client's normal ends its session, any
            # other code keeps it for a resume.
            self.close_code = frame.name
            self._close("normal", "", end_code="normal" if frame.name == "normal" else None)
        else:
            self._close("protocol_error", "a second HELLO")

    def _call(self, frame: Frame) -> None:
        calls = self._calls
        if calls is None:
            calls = self._calls = set()
        task = self._hub._spawn(self._run_call(frame))
        calls.add(task)
        task.add_done_callback(self._call_done)

    def _call_done(self, task: asyncio.Task[None]) -> None:
        calls = self._calls
        if calls is not None:
            calls.discard(task)
        backlog = self._backlog
        if backlog is None or self._state != _OPEN:
            return
        limit = self._hub.limits.max_calls_in_flight
        while backlog and self._state == _OPEN:
            if backlog[0].kind == KIND_CALL and calls is not None and len(calls) >= limit:
                return
            self._frame(backlog.popleft())
        if self._state == _OPEN:
            self._backlog = None
            self.link.resume_reading()

    async def _run_call(self, frame: Frame) -> None:
        handler = self._hub.commands.get(frame.name)
        if handler is None:
            self._error(frame.id, "unknown_command", "no command named so")
            return
        data: Any = frame.payload
        if self.framing == FRAMING_BINARY or self.framing == FRAMING_WS_BINARY:
            try:
                data = self.codec_obj.decode(data)
            except ValueError:
                self._error(frame.id, "bad_payload", f"the data is not valid {self.codec}")
                return
        try:
            result = await handler(self, data)
        except PushDenied as exc:
            # The one exception whose words reach the client (errors.PushDenied).
            code = exc.code if _CODE.match(exc.code or "") else "denied"
            self._error(frame.id, code, str(exc.text)[:_MAX_TEXT_CHARS])
            return
        except Exception:
            # §7.2: a generic text; what went wrong goes to the server's log only.
            _log.exception("push command %r failed", frame.name)
            self._error(frame.id, "handler_error", "the command failed")
            return
        if self._state != _OPEN:
            return
        try:
            reply = encode(KIND_REPLY, frame.id, "", for_frame(self.codec_obj, result, self.framing),
                           0, self.framing)
        except (TypeError, ValueError):
            _log.exception("push command %r returned a value its %s client cannot receive",
                           frame.name, self.codec)
            self._error(frame.id, "handler_error", "the command failed")
            return
        if len(reply) - _FRAMING_EXTRA.get(self.framing, 0) > self._hub.limits.max_frame_bytes:
            _log.error("push command %r returned a reply over max_frame_bytes (%d)", frame.name,
                       self._hub.limits.max_frame_bytes)
            self._error(frame.id, "handler_error", "the command failed")
            return
        self._send(reply)

    def _error(self, request_id: int, code: str, text: str) -> None:
        if self._state == _OPEN:
            self._send(encode(KIND_ERROR, request_id, code, text, 0, self.framing))

    # ------------------------------------------------------------------ pushes (§8)
    def push(self, template: PushTemplate | None, seq: int, size: int) -> None:
        """Push number ``seq`` (a GAP when ``template`` is None: this client cannot receive
        it), under the slow-consumer policy (§8.6)."""
        if self.held is not None:
            # What was held goes first, as far as the bound allows now.
            self.flush_held()
            if self.held is not None:
                self._hold(seq, seq, template, size)
                return
        link = self.link
        if link.buffered() + size > self._hub.limits.queue_bytes:
            self.slow(seq, seq, template, size)
            return
        if template is None:
            self._send(encode(KIND_GAP, seq, "", seq, 0, self.framing))
        else:
            link.send_push(template, seq)

    def gap(self, first: int, last: int) -> None:
        """Numbers ``first``..``last`` will never be delivered (§8.3)."""
        if self.held is not None:
            self.flush_held()
        if self.held is not None:
            self._hold(first, last, None, 0)
        else:
            self._send(encode(KIND_GAP, first, "", last, 0, self.framing))

    def replay(self, template: PushTemplate | None, seq: int) -> None:
        """A push of the history, on a resume: written whatever the queue holds (the history
        is bounded itself, §8.4)."""
        if template is None:
            self.replay_gap(seq, seq)
        else:
            self.link.send_push(template, seq)

    def replay_gap(self, first: int, last: int) -> None:
        self._send(encode(KIND_GAP, first, "", last, 0, self.framing))

    def slow(self, first: int, last: int, template: PushTemplate | None, size: int) -> None:
        """Push ``first``..``last`` would pass ``queue_bytes`` (§8.6)."""
        if self._state != _OPEN:
            return
        if self._hub.drop_oldest:
            self.held = deque()
            self._hold(first, last, template, size)
            self._held_timer = self._hub.loop.call_later(_HELD_RETRY_S, self._retry_held)
            return
        # disconnect: the session stays resumable and the push stays in its history; the
        # queue is what is full, so the connection is dropped rather than flushed (§9).
        self._close("slow_consumer", f"more than {self._hub.limits.queue_bytes} bytes queued",
                    abort=True)

    def _hold(self, first: int, last: int, template: PushTemplate | None, size: int) -> None:
        held = self.held
        assert held is not None
        held.append((first, last, template, size))
        self._held_bytes += size
        bound = self._hub.limits.queue_bytes
        if self._held_bytes > bound:
            # drop_oldest: the oldest held pushes go, and one GAP says which (§8.3).
            gap = self._held_gap
            while held and self._held_bytes > bound:
                start, end, _, dropped = held.popleft()
                self._held_bytes -= dropped
                gap = (gap[0] if gap is not None else start, end)
            self._held_gap = gap

    def flush_held(self) -> None:
        """Write what was held back, as far as the queue bound allows (``link_drained``, and
        each heartbeat tick, since a bound below the transport's water marks never drains)."""
        held = self.held
        if held is None:
            return
        link = self.link
        bound = self._hub.limits.queue_bytes
        gap = self._held_gap
        if gap is not None:
            if link.buffered() > bound:
                return
            self._held_gap = None
            self._send(encode(KIND_GAP, gap[0], "", gap[1], 0, self.framing))
        while held:
            first, last, template, size = held[0]
            if link.buffered() + size > bound:
                return
            held.popleft()
            self._held_bytes -= size
            if template is None:
                self._send(encode(KIND_GAP, first, "", last, 0, self.framing))
            else:
                link.send_push(template, first)
        self.held = None
        self._stop_held_timer()

    def _retry_held(self) -> None:
        self._held_timer = None
        if self.held is None or self._state != _OPEN:
            return
        self.flush_held()
        if self.held is not None:
            self._held_timer = self._hub.loop.call_later(_HELD_RETRY_S, self._retry_held)

    def _stop_held_timer(self) -> None:
        timer = self._held_timer
        if timer is not None:
            self._held_timer = None
            timer.cancel()

    # ------------------------------------------------------------------ heartbeats (§10)
    def heartbeat(self) -> None:
        """The hub's ticker: PING a client this side sent nothing to for a whole tick."""
        if self._state != _OPEN:
            return
        if self.held is not None:
            self.flush_held()
        if not self.link.take_sent():
            self._ping_id += 1
            self._send(encode(KIND_PING, self._ping_id, "", None, 0, self.framing))

    # ------------------------------------------------------------------ closing (§9)
    def close(self, code: str, text: str = "", *, end_code: str | None = None,
              abort: bool = False) -> None:
        """CLOSE ``code`` and close the connection; ``end_code``: the session ends with it
        (``on_disconnect`` gets that code), else it stays for a resume."""
        self._close(code, text, end_code=end_code, abort=abort)

    def shutdown(self) -> None:
        """The server stops: CLOSE ``going_away`` (REFUSE ``going_away`` during the HELLO)."""
        state = self._state
        if state == _OPEN:
            self._close("going_away", "the server is shutting down")
        elif state == _AUTH:
            self._call_off(self._refuse_going_away)
        elif state == _HELLO:
            if self.link.framing == FRAMING_AUTO:
                self._state = _CLOSING
                self._stop_timer()
                self.link.close(0)
            else:
                self.framing = self.link.framing
                self._close("going_away", "the server is shutting down")

    def _refuse_going_away(self) -> None:
        self.refuse("going_away", "the server is shutting down")

    def _call_off(self, then: Callable[[], None]) -> None:
        """Cancel the HELLO's authentication (if any), and ``then`` once it has ended: past
        the auth hook it puts back what it took (a resume token, a session handed over:
        ``Hub._opening``) before the client hears that its HELLO failed and tries again."""
        self._stop_timer()
        auth = self._auth
        self._auth = None
        if auth is None or auth.done():
            then()
            return
        auth.cancel()
        auth.add_done_callback(lambda _task: then())

    def abort(self) -> None:
        if self._state < _CLOSING:
            self._state = _CLOSING
            self.close_code = self.close_code or "going_away"
            self._stop_timer()
            if self._session is not None:
                self._hub._detach(self, None)
        self.link.abort()

    def _close(self, code: str, text: str, *, end_code: str | None = None,
               abort: bool = False) -> None:
        if self._state >= _CLOSING:
            return
        self._state = _CLOSING
        if self.close_code is None:
            self.close_code = code
        self._stop_timer()
        self.held = None
        self._stop_held_timer()
        if self.framing != FRAMING_AUTO:
            self._send(encode(KIND_CLOSE, 0, code, text, 0, self.framing))
        if abort:
            self.link.abort()
        else:
            self.link.close(self._hub.limits.close_timeout_s)
        if self._session is not None:
            self._hub._detach(self, end_code)

    def _stop_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()

    def _send(self, frame: bytes) -> None:
        self.link.send(frame)

    def __repr__(self) -> str:
        state = ("hello", "auth", "open", "closing", "lost")[self._state]
        return f"<push Connection {self.client_id or '-'} {self.transport} {state} peer={self.peer}>"
