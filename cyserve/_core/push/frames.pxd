# cython: language_level=3
"""Contract of the cyserve-push/1 frame codec (``docs/push-protocol.md`` is the protocol; this is
its C face for the connection role).

Four framings of one frame ``(kind, flags, id, name, payload)``:

- ``FRAMING_BINARY`` (TCP): ``u32 length`` (big-endian, of what follows), then the 11-byte header
  ``u8 kind, u8 flags, u64 id, u8 name length``, the name (UTF-8), the payload to the end;
- ``FRAMING_JSON_LINES`` (TCP): one JSON object per ``\\n``-terminated line;
- ``FRAMING_WS_BINARY``: a binary WebSocket message is a binary frame without the length prefix;
- ``FRAMING_WS_TEXT``: a text WebSocket message is one JSON object.

``FrameDecoder`` decodes one direction of one connection.  On TCP it is incremental: the role
hands it the unread bytes of the receive buffer (``next(data, n, &consumed)``) and consumes what
it used; with ``FRAMING_AUTO`` (a server) the client's first byte chooses the framing (``{``: JSON
lines, anything else: binary).  On WebSocket each message is decoded whole (``message(msg)``).
The decoder checks everything a frame says on its own (layout, kinds and who may send them, flags,
the id, name and payload rules of each kind, UTF-8, JSON, the size limit); the order of frames
(HELLO first, nothing before WELCOME, ...) is the role's.  Anything wrong is an ``EV_ERROR``
with a ``Violation`` (code ``VIOLATION_PROTOCOL_ERROR`` or ``VIOLATION_TOO_LARGE``); the decoder
then returns ``EV_ERROR`` for ever.  It never raises for anything the peer sent.

``PushTemplate`` is one group publish encoded once: per member, ``write_head`` (or ``frame``)
adds the few bytes that carry its sequence number before the shared ``body``.
"""

# Frame kinds (the u8 at offset 4 of a binary frame; "t" of a JSON frame).
cpdef enum:
    KIND_HELLO = 1      # c->s  name: protocol version; payload: JSON object
    KIND_WELCOME = 2    # s->c  name: protocol version; payload: JSON object
    KIND_REFUSE = 3     # s->c  name: reason code; payload: text
    KIND_CALL = 4       # c->s  id: request id >= 1; name: command; payload: codec data
    KIND_REPLY = 5      # s->c  id: request id >= 1; payload: codec data
    KIND_ERROR = 6      # s->c  id: request id or 0; name: error code; payload: text
    KIND_PUSH = 7       # s->c  id: sequence number >= 1; name: group or ""; payload: codec data
    KIND_ACK = 8        # c->s  id: sequence number >= 1
    KIND_GAP = 9        # s->c  id: first lost sequence number; payload: the last lost one
    KIND_PING = 10      # both  id: opaque
    KIND_PONG = 11      # both  id: the PING's
    KIND_CLOSE = 12     # both  name: close code; payload: text
    KIND_MAX = 12

# Flag bits (u8 at offset 5); every bit not allowed for a kind must be 0.
cpdef enum:
    FLAG_ACK_REQUESTED = 0x01   # PUSH only: the client answers ACK with the push's sequence number

cpdef enum:
    FRAMING_AUTO = 0            # a server's TCP decoder before the client's first byte
    FRAMING_BINARY = 1
    FRAMING_JSON_LINES = 2
    FRAMING_WS_BINARY = 3
    FRAMING_WS_TEXT = 4

# Sizes and limits of the layout.
cpdef enum:
    PREFIX_BYTES = 4            # the u32 length of a binary frame on TCP
    HEADER_BYTES = 11           # kind, flags, id, name length: the shortest frame
    MAX_NAME_BYTES = 255        # a name's UTF-8 length fits its u8
    MIN_FRAME_LIMIT = 64        # the smallest max_frame_bytes a decoder accepts
    MAX_FRAME_LIMIT = 1073741824  # 1 GiB, the largest: a binary length's first byte is then
                                  # <= 0x40, never "{", so the framings cannot be confused
    PUSH_HEAD_MAX = 40          # room write_head needs ('{"t":"push","id":' + 20 digits)

# What FrameDecoder.next() / message() found.
cpdef enum:
    EV_NONE = 0                 # need more bytes (all given were consumed; a partial frame is kept)
    EV_FRAME = 1                # ``frame`` holds the next frame
    EV_ERROR = 2                # ``violation`` says why; the decoder is dead

cpdef enum:
    VIOLATION_PROTOCOL_ERROR = 1  # close with "protocol_error"
    VIOLATION_TOO_LARGE = 2       # send ERROR "too_large" (id 0), then close with "too_large"


cdef class Frame:
    """One decoded (or to-be-encoded) frame; see frames.pyi for the payload's type per kind."""
    cdef readonly int kind
    cdef readonly int flags
    cdef readonly unsigned long long id
    cdef readonly str name
    cdef readonly object payload


cdef class Violation:
    """Why a decoder died: the close code to send and a short reason (no peer data beyond
    numbers, at most 123 UTF-8 bytes, so it fits a WebSocket close reason too)."""
    cdef readonly int kind              # VIOLATION_PROTOCOL_ERROR or VIOLATION_TOO_LARGE
    cdef readonly str code              # "protocol_error" or "too_large"
    cdef readonly str reason


cdef class FrameDecoder:
    cdef readonly int framing           # FRAMING_AUTO until a server's first byte is in
    cdef readonly bint client           # decodes what a server sends (else what a client sends)
    cdef readonly Py_ssize_t max_frame_bytes
    cdef readonly Frame frame           # the last EV_FRAME's frame
    cdef readonly Violation violation   # set on EV_ERROR, for ever
    # implementation state (frames.pyx owns it)
    cdef int _state
    cdef unsigned char _prefix[4]
    cdef Py_ssize_t _prefix_len
    cdef Py_ssize_t _need               # binary: the current frame's length (after the prefix)
    cdef bytearray _partial             # a frame or line split across inputs (<= max_frame_bytes)
    cdef unsigned int _senders          # the sender bit a kind needs to be accepted

    # TCP framings: decode from data[0:n]; ``consumed[0]`` is set to the bytes used.  Returns one
    # EV_*; call again with the rest while it returns EV_FRAME.
    cdef int next(self, const unsigned char* data, Py_ssize_t n, Py_ssize_t* consumed) except -1
    # WebSocket framings: one whole message (``bytes`` for WS_BINARY; ``str`` or UTF-8 ``bytes``
    # for WS_TEXT) is one frame: EV_FRAME or EV_ERROR.
    cdef int message(self, object message) except -1


cdef class PushTemplate:
    cdef readonly int framing
    cdef readonly int flags
    cdef readonly str name
    cdef readonly bytes body            # the bytes every member shares, after its head
    cdef Py_ssize_t _head_len           # binary framings: the fixed head length

    # Write the head for sequence number ``seq`` (>= 1) at ``dst`` (room for PUSH_HEAD_MAX
    # bytes); returns its length.  head + body is the frame ``encode_frame`` would make.
    cdef Py_ssize_t write_head(self, unsigned char* dst, unsigned long long seq) noexcept
    # head + body in one new bytes.
    cpdef bytes frame(self, unsigned long long seq)


# One frame in ``framing`` (not FRAMING_AUTO).  ValueError/TypeError when a field breaks the
# kind's rules (a programmer's mistake: the same rules the decoder holds a peer to).
cdef bytes encode_frame(int kind, unsigned long long id, str name, object payload, int flags,
                        int framing)
