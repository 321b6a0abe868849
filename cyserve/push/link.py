"""What a push connection is to the hub, whatever carries it: a ``Link`` (TCP through the Cython
``cyserve._core.push.role.PushRole``, or a WebSocket) moves whole frames; the ``LinkHandler``
(the hub's per-connection ``Connection``) is told what arrives.

The split (docs/push-protocol.md §16): a link owns the bytes (framing detection, the frame
decoder, writes through the outbox, the input-idle watch, closing the transport); the handler
owns the session rules (the order of frames, HELLO/WELCOME, calls, acks, heartbeats, slow
consumers) once, for both transports.
"""
from __future__ import annotations

from typing import Any, Protocol

from cyserve._core.push.frames import Frame, PushTemplate, Violation

__all__ = ["Link", "LinkHandler"]


class LinkHandler(Protocol):
    """Told by a link what happens on its connection, on the loop, never concurrently."""

    def link_frames(self, frames: list[Frame]) -> None:
        """Frames decoded in one read pass, in order (never empty)."""

    def link_violation(self, violation: Violation) -> None:
        """The peer broke §3-§4 (or sent a WebSocket message of the other type): the decoder is
        dead; the handler answers (ERROR ``too_large``, CLOSE) and closes the link."""

    def link_idle(self) -> None:
        """No byte arrived for the seconds of the last ``expect_idle``."""

    def link_drained(self) -> None:
        """The transport's write buffer fell below its low water mark after it had passed the
        high one (``resume_writing``): pushes the handler held back may go now."""

    def link_shutdown(self, abort: bool) -> None:
        """The server stops: ``abort`` False = say CLOSE ``going_away`` and close; True = drop."""

    def link_lost(self) -> None:
        """The connection is gone (after a close, or the peer went away); nothing more arrives
        and writes are dropped."""


class Link(Protocol):
    """One push connection's transport, as the hub's ``Connection`` drives it."""

    @property
    def framing(self) -> int:
        """``FRAMING_*`` of ``cyserve._core.push.frames`` in use; ``FRAMING_AUTO`` on TCP until
        the first byte arrived (no frame reaches the handler before that)."""

    @property
    def peer(self) -> Any:
        """The client's address as the loop gives it (after a PROXY header, if any)."""

    @property
    def closing(self) -> bool:
        """``close``/``abort`` was called or the connection is gone: writes are dropped."""

    def start(self, handler: LinkHandler) -> None:
        """Report to ``handler`` from now on (once; frames that already arrived come first)."""

    def send(self, frame: bytes) -> None:
        """One whole frame encoded in this link's framing (TCP: with its length prefix or
        newline; WebSocket: the message, which the link sends as binary or text by framing).
        Never waits; dropped once closing."""

    def send_push(self, template: PushTemplate, seq: int) -> None:
        """``template.frame(seq)``, written as head + shared body without joining them where
        the transport allows (the group fan-out's path).  ``template.framing`` is this link's."""

    def buffered(self) -> int:
        """Bytes written and not yet on the wire (queued in the outbox + the transport's
        buffer): what ``PushLimits.queue_bytes`` is measured against."""

    def take_sent(self) -> bool:
        """Whether anything was sent since the last call (then cleared): the heartbeat sends a
        PING to a link that has been silent for a whole interval."""

    def expect_idle(self, seconds: float) -> None:
        """``link_idle`` after ``seconds`` without a byte from the peer (each byte re-arms it;
        paused reading does not count as the peer's silence); 0 switches it off."""

    def pause_reading(self) -> None:
        """Stop reading (too many calls in flight); the kernel's buffers push back."""

    def resume_reading(self) -> None: ...

    def close(self, timeout_s: float) -> None:
        """Stop writing after what is queued (a CLOSE the handler sent last), then close the
        connection once it is flushed or after ``timeout_s``.  Idempotent."""

    def abort(self) -> None:
        """Drop the connection now, unsent bytes with it."""
