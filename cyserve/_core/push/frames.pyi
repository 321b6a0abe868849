"""The cyserve-push/1 frame codec (``cyserve._core.push.frames``); ``docs/push-protocol.md`` is the
protocol it implements.

Cython code uses the C face declared in ``frames.pxd`` (``FrameDecoder.next``/``message`` and
their ``EV_*`` events, ``encode_frame``, ``PushTemplate.write_head``); this is the Python face,
for the hub, the client, tests and benchmarks.

A frame is ``(kind, id, name, payload, flags)`` in four framings: ``FRAMING_BINARY`` (TCP,
length-prefixed), ``FRAMING_JSON_LINES`` (TCP, one JSON object per line), ``FRAMING_WS_BINARY``
and ``FRAMING_WS_TEXT`` (one WebSocket message per frame).  A ``Frame``'s payload, by kind:

- HELLO, WELCOME: ``dict`` (a JSON object, in every framing);
- REFUSE, ERROR, CLOSE: ``str`` (``""`` when there is none);
- GAP: ``int``, the last lost sequence number (the id is the first);
- ACK, PING, PONG: ``None``;
- CALL, REPLY, PUSH: the connection codec's data: ``bytes`` in the binary framings (the codec
  named in HELLO decodes them), the parsed JSON value in the JSON framings (the codec is JSON).
"""
from typing import Final

KIND_HELLO: Final[int]
KIND_WELCOME: Final[int]
KIND_REFUSE: Final[int]
KIND_CALL: Final[int]
KIND_REPLY: Final[int]
KIND_ERROR: Final[int]
KIND_PUSH: Final[int]
KIND_ACK: Final[int]
KIND_GAP: Final[int]
KIND_PING: Final[int]
KIND_PONG: Final[int]
KIND_CLOSE: Final[int]
KIND_MAX: Final[int]
KIND_NAMES: Final[tuple[str, ...]]
"""``KIND_NAMES[kind]``: the kind's name, its ``"t"`` in JSON (``KIND_NAMES[0]`` is ``""``)."""

FLAG_ACK_REQUESTED: Final[int]
"""PUSH only (bit 0x01): the client answers ``ACK`` with the push's sequence number."""

FRAMING_AUTO: Final[int]
FRAMING_BINARY: Final[int]
FRAMING_JSON_LINES: Final[int]
FRAMING_WS_BINARY: Final[int]
FRAMING_WS_TEXT: Final[int]

PREFIX_BYTES: Final[int]
"""4: the big-endian length before each binary frame on TCP."""
HEADER_BYTES: Final[int]
"""11: kind, flags, id (8), name length: a binary frame's fixed header and its shortest length."""
MAX_NAME_BYTES: Final[int]
"""255: a name's UTF-8 length fits the header's u8."""
MIN_FRAME_LIMIT: Final[int]
"""64: the smallest ``max_frame_bytes``."""
MAX_FRAME_LIMIT: Final[int]
"""1 GiB: the largest ``max_frame_bytes`` (and the largest frame the encoders make)."""
PUSH_HEAD_MAX: Final[int]
"""40: the longest head ``PushTemplate`` puts before its body."""

EV_NONE: Final[int]
EV_FRAME: Final[int]
EV_ERROR: Final[int]
VIOLATION_PROTOCOL_ERROR: Final[int]
VIOLATION_TOO_LARGE: Final[int]

VERSION: Final[str]
"""``"cyserve-push/1"``: the protocol version HELLO and WELCOME carry as their name."""
CODECS: Final[frozenset[str]]
"""The payload codecs a HELLO may name: ``json``, ``bytes``, ``xml`` (docs §6.3)."""
CLOSE_CODES: Final[frozenset[str]]
"""The close codes of docs §9 (a peer may send others; they are treated as ``going_away``)."""
REFUSE_CODES: Final[frozenset[str]]
"""The reason codes of a REFUSE (docs §6.4)."""
ERROR_CODES: Final[frozenset[str]]
"""The error codes of an ERROR this version sends (docs §7.2)."""


class Frame:
    """One frame.  A value: compared field by field (and the payload's type), not hashable."""

    def __init__(self, kind: int, id: int = 0, name: str = "", payload: object = None,
                 flags: int = 0) -> None:
        """No checks: the encoders and the decoder hold a frame to its kind's rules."""
    @property
    def kind(self) -> int:
        """One of ``KIND_*``."""
    @property
    def flags(self) -> int:
        """``FLAG_ACK_REQUESTED`` on a PUSH that asks for an ACK, else 0."""
    @property
    def id(self) -> int:
        """The request id (CALL, REPLY, ERROR), the sequence number (PUSH, ACK; the first lost
        one for GAP), the ping id (PING, PONG), else 0."""
    @property
    def name(self) -> str:
        """The version (HELLO, WELCOME), command (CALL), group (PUSH; ``""`` for a push to one
        client) or code (REFUSE, ERROR, CLOSE); ``""`` for the other kinds."""
    @property
    def payload(self) -> object:
        """See the module docstring: its type depends on the kind and the framing."""
    def __eq__(self, other: object) -> bool: ...


class Violation:
    """Why a decoder stopped: the peer broke the protocol.  The role closes the connection with
    ``code`` (after an ``ERROR "too_large"`` with id 0 when the code is ``too_large``)."""

    def __init__(self, kind: int, reason: str) -> None:
        """``kind``: ``VIOLATION_PROTOCOL_ERROR`` or ``VIOLATION_TOO_LARGE``; ValueError else."""
    @property
    def kind(self) -> int:
        """``VIOLATION_PROTOCOL_ERROR`` or ``VIOLATION_TOO_LARGE``."""
    @property
    def code(self) -> str:
        """The close code: ``"protocol_error"`` or ``"too_large"``."""
    @property
    def reason(self) -> str:
        """What was wrong, short (<= 123 UTF-8 bytes) and without the peer's bytes: fit to send
        as the CLOSE text and as a WebSocket close reason."""
    def __eq__(self, other: object) -> bool: ...


class FrameDecoder:
    """Decoder of the frames one peer sends on one connection.

    TCP framings are decoded incrementally: the frames never depend on how the stream is split.
    A server's decoder made with ``framing=None`` takes the framing from the client's first byte
    (``{``: JSON lines; anything else: binary) and reports it in ``framing`` from then on.  The
    WebSocket framings take one whole message per ``feed``.

    Each frame is checked on its own: layout, kind and who may send it (a server's decoder
    refuses WELCOME, PUSH...; a client's refuses HELLO, CALL, ACK), flag bits, the kind's id,
    name and payload rules, UTF-8 of names and texts (names carry no C0 controls or DEL and are at
    most 255 bytes), JSON, unknown JSON keys, and ``max_frame_bytes``.  The order of frames
    (HELLO first and once, nothing before WELCOME) is the connection role's to check.  Anything
    wrong ends the list ``feed`` returns with a ``Violation``; the decoder is then dead and every
    later ``feed`` returns ``[that violation]``.  It never raises for anything the peer sent.

    Memory: a frame or line split across reads is kept until complete, never more than
    ``max_frame_bytes``; a binary length over the limit is refused on its 4 bytes, before any of
    the frame is buffered; a JSON line is refused once ``max_frame_bytes`` bytes have come without
    a newline.
    """

    def __init__(self, max_frame_bytes: int, framing: int | None = None, *,
                 client: bool = False) -> None:
        """``max_frame_bytes`` (``MIN_FRAME_LIMIT``..``MAX_FRAME_LIMIT``): the largest frame,
        counted after a binary frame's length prefix, without a JSON line's newline, or as a
        WebSocket message's (UTF-8) length.  ``framing``: one of ``FRAMING_*``, or ``None`` for
        detection (a server's TCP decoder).  ``client``: decodes what a server sends (a client's
        decoder, which needs its framing).  ValueError for a limit out of range, an unknown
        framing, or a client without a framing."""
    @property
    def framing(self) -> int:
        """The framing; ``FRAMING_AUTO`` until a detecting decoder has seen the first byte."""
    @property
    def client(self) -> bool:
        """Decodes what a server sends."""
    @property
    def max_frame_bytes(self) -> int: ...
    @property
    def frame(self) -> Frame | None:
        """The last frame decoded (the C face's result slot)."""
    @property
    def violation(self) -> Violation | None:
        """Why the decoder is dead, or ``None``."""

    def feed(self, data: bytes | bytearray | memoryview | str) -> list[Frame | Violation]:
        """TCP framings: the next piece of the stream (every byte is consumed; a partial frame
        is kept); returns the frames it completes, in order.  WebSocket framings: one whole
        message (``bytes`` for ``FRAMING_WS_BINARY``; ``str`` or UTF-8 ``bytes`` for
        ``FRAMING_WS_TEXT``), one frame.  A ``Violation`` is always the last item."""


def encode(kind: int, id: int = 0, name: str = "", payload: object = None, flags: int = 0,
           framing: int = FRAMING_BINARY) -> bytes:
    """One frame in ``framing`` (not ``FRAMING_AUTO``): decoding it gives
    ``Frame(kind, id, name, payload, flags)`` back (JSON framings: the JSON value).

    ``payload`` by kind: a ``dict`` (HELLO, WELCOME), a ``str`` (REFUSE, ERROR, CLOSE), an ``int``
    >= ``id`` (GAP), ``None`` (ACK, PING, PONG); CALL, REPLY, PUSH: bytes-like (the codec's
    output) in the binary framings, any JSON-serialisable value in the JSON ones.  A JSON frame
    is compact, its keys in the order ``t, id, name, data, ack`` (docs §3.2); a JSON line ends
    with ``\\n``.  ValueError for an unknown kind or framing, flags the kind does not allow, an id
    or name breaking the kind's rule, a name over 255 UTF-8 bytes or with a control character, a
    gap ending before it starts, a frame over 1 GiB; TypeError for a payload of the wrong type;
    OverflowError for an id outside 0..2**64-1."""


class PushTemplate:
    """One PUSH encoded once for every member of a group (docs §11).

    ``body`` is shared; each member's frame is ``head(seq) + body`` (byte for byte what
    ``encode(KIND_PUSH, seq, name, payload, flags, framing)`` makes), so a publish to N members
    encodes the payload once and writes N small heads: 14 bytes in ``FRAMING_BINARY`` (length,
    kind, flags, sequence number), 10 in ``FRAMING_WS_BINARY``, ``{"t":"push","id":`` and the
    decimal number in the JSON framings (whose body is the rest of the object, and its newline).
    """

    def __init__(self, name: str, payload: object, flags: int = 0,
                 framing: int = FRAMING_BINARY) -> None:
        """``name``: the group (``""`` for a direct push); ``payload``: bytes-like in the binary
        framings, a JSON value in the JSON ones; ``flags``: 0 or ``FLAG_ACK_REQUESTED``.
        Errors as ``encode``'s."""
    @property
    def framing(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def body(self) -> bytes:
        """The bytes every member's frame ends with."""
    def head(self, seq: int) -> bytes:
        """The bytes before ``body`` for sequence number ``seq`` (>= 1; ValueError for 0)."""
    def frame(self, seq: int) -> bytes:
        """``head(seq) + body`` in one allocation (ValueError for ``seq`` 0)."""
