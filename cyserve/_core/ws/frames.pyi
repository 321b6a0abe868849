"""The RFC 6455 §5 frame codec (``cyserve._core.ws.frames``), one for both WebSocket roles.

Cython code uses the C face declared in ``frames.pxd`` (``FrameDecoder.next`` and its ``EV_*``
events, ``encode_frame``, ``encode_close``, the ``OP_*`` and ``CLOSE_*`` constants); this is the
Python face, for tests and pure-Python callers.

Opcodes (§5.2): 0x0 continuation, 0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xA pong.
"""
from typing import Literal, TypeAlias

from cyserve._core.ws.deflate import Inflater

Event: TypeAlias = (
    tuple[Literal["message"], int, str | bytes]
    | tuple[Literal["ping"], bytes]
    | tuple[Literal["pong"], bytes]
    | tuple[Literal["close"], int, str]
    | tuple[Literal["error"], int, str]
)
"""What ``FrameDecoder.feed`` reports: ``("message", opcode, payload)`` (``str`` for text, ``bytes``
for binary), ``("ping", payload)``, ``("pong", payload)``, ``("close", code, reason)`` (code 1005
when the frame had no payload) or ``("error", close_code, why)``."""

class FrameDecoder:
    """Incremental decoder of the frames one peer sends; one instance per connection.

    Reassembles fragmented messages (control frames may come between their fragments, §5.4),
    unmasks payloads as they arrive and checks text as UTF-8 incrementally, so an invalid sequence
    fails as soon as its bytes are in, even mid-frame.  The events never depend on how the input
    is split.  Anything the peer gets wrong is an ``("error", code, why)`` event, never an
    exception: 1002 for a protocol violation (§5.2 reserved bits and opcodes, masking the wrong
    way, a control frame over 125 bytes or fragmented, a continuation with nothing to continue, a
    new message inside one, a non-minimal length or one with the top bit set, a close code §7.4
    does not allow, a 1-byte close payload), 1007 for invalid UTF-8 (text or close reason) or
    corrupt compressed data, 1009 for a limit.  After an error the decoder is dead: every later
    ``feed`` reports the same error again.  It keeps decoding after a close frame; ignoring what
    follows one (§1.4) is the caller's job.
    """

    def __init__(
        self,
        *,
        expect_masked: bool,
        max_frame_bytes: int,
        max_message_bytes: int,
        inflater: Inflater | None = None,
    ) -> None:
        """``expect_masked``: True on a server (every client frame must be masked, §5.1), False on
        a client (a masked frame is an error).  ``max_frame_bytes``: a frame declaring a longer
        payload is refused (1009) before any of it is read.  ``max_message_bytes``: a message
        (inflated, when compressed) longer than this is refused (1009) as soon as it passes it;
        the number of fragments is not limited otherwise.  ``inflater``: permessage-deflate was
        negotiated (RFC 7692); without one, RSV1 is an error (1002).  ValueError when a limit is
        not positive."""

    @property
    def expect_masked(self) -> bool:
        """Every frame must be masked (a server's decoder)."""
    @property
    def max_frame_bytes(self) -> int:
        """The largest payload length a frame may declare."""
    @property
    def max_message_bytes(self) -> int:
        """The largest message, after inflation."""
    @property
    def opcode(self) -> int:
        """The last event's opcode (text, binary, close, ping, pong; 0 after an error)."""
    @property
    def payload(self) -> str | bytes | None:
        """The last event's payload: ``str`` for text, ``bytes`` for binary, ping, pong and the
        raw close payload; ``None`` after an error."""
    @property
    def close_code(self) -> int:
        """The last close frame's code (1005 when it had none), or the code to close with after
        an error (1002, 1007 or 1009)."""
    @property
    def close_reason(self) -> str | None:
        """The last close frame's reason (``""`` when it had none)."""
    @property
    def error(self) -> str | None:
        """Why the decoder failed (short enough to send as a close reason), or ``None``."""

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Decode the next piece of the stream: the events it completes, in order.  Every byte is
        consumed (a partial frame is kept); an error event is always the last of the list."""

def encode(
    opcode: int,
    payload: bytes | bytearray | memoryview | str,
    fin: bool = True,
    rsv1: bool = False,
    mask: bool = False,
) -> bytes:
    """One frame, header and payload in one ``bytes`` (a ``str`` payload is sent as UTF-8).

    The length takes its shortest form (§5.2: 7 bits up to 125, 16 bits up to 65535, else 64).
    ``mask`` (a client, §5.3): a fresh 4-byte key per frame from ``os.urandom`` (drawn 4 KiB at a
    time), the payload masked with it.  ``rsv1``: the first frame of a compressed message (RFC
    7692).  ValueError for a reserved opcode, a control frame over 125 bytes, fragmented or with
    RSV1, or RSV1 on a continuation.
    """

def encode_close_frame(code: int, reason: str = "", mask: bool = False) -> bytes:
    """A close frame (§5.5.1) with ``code`` and ``reason`` (UTF-8, cut to 123 bytes at a character
    boundary).  ``code`` 1005 sends an empty payload (and allows no reason).  ValueError for a code
    that must not be sent (§7.4: only 1000-1003, 1007-1014 and 3000-4999)."""
