# cython: language_level=3
"""Contract of the RFC 6455 frame codec (§5), one for both roles.

``FrameDecoder`` is incremental: the role hands it the unread bytes of the ``Stream``'s receive
buffer (``next(data, n, &consumed)``) and consumes what it used; a frame's payload may arrive in
any number of pieces, and is copied once, unmasked on the way (word at a time), into the message
being assembled, so the receive buffer never has to hold a whole frame.  Fragmented messages are
reassembled with control frames interleaved (§5.4); text is checked as UTF-8 incrementally, so a
bad sequence fails as soon as its bytes arrive (1007), not at the end of the message.  With an
``Inflater`` (permessage-deflate negotiated), RSV1 on a message's first frame means compressed:
the payload is inflated piece by piece within ``max_message_bytes``.

Limits: ``max_frame_bytes`` (a frame's declared length) and ``max_message_bytes`` (a message
after inflation) close with 1009; the number of fragments is bounded by the message size alone.
Every protocol violation (§5.2 reserved bits and opcodes, masking the wrong way, control frames
over 125 bytes or fragmented, a continuation with nothing to continue, a new data frame inside a
message, a non-minimal length or one with the top bit set, close codes §7.4.1/§7.4.2, a close
payload of 1 byte, invalid UTF-8 in a close reason) is an ``EV_ERROR`` with the close code to send
(1002, 1007 or 1009) and a reason; the decoder then returns ``EV_ERROR`` for ever.  It never
raises for anything the peer sent.

Encoding: ``encode_frame`` writes one frame (header and payload in one bytes object); a client
masks with a fresh key per frame from a cryptographic source (§5.3), a server never masks.
"""
from cyserve._core.ws.deflate cimport Inflater

cdef enum:
    OP_CONT = 0x0
    OP_TEXT = 0x1
    OP_BINARY = 0x2
    OP_CLOSE = 0x8
    OP_PING = 0x9
    OP_PONG = 0xA

# What FrameDecoder.next() found.
cdef enum:
    EV_NONE = 0       # need more bytes (everything given was consumed or is a partial header)
    EV_MESSAGE = 1    # opcode OP_TEXT (payload: str) or OP_BINARY (payload: bytes), whole
    EV_PING = 2       # payload: bytes (<= 125)
    EV_PONG = 3       # payload: bytes (<= 125)
    EV_CLOSE = 4      # close_code (1005 when the frame had no payload), close_reason (str)
    EV_ERROR = 5      # close_code (1002, 1007 or 1009), error (str); the decoder is dead

# Close codes (RFC 6455 §7.4.1) the codec and the roles use.
cdef enum:
    CLOSE_NORMAL = 1000
    CLOSE_GOING_AWAY = 1001
    CLOSE_PROTOCOL_ERROR = 1002
    CLOSE_UNSUPPORTED = 1003
    CLOSE_NO_STATUS = 1005
    CLOSE_ABNORMAL = 1006
    CLOSE_INVALID_DATA = 1007
    CLOSE_POLICY = 1008
    CLOSE_TOO_BIG = 1009
    CLOSE_INTERNAL_ERROR = 1011


cdef class FrameDecoder:
    cdef readonly bint expect_masked          # a server's decoder: every frame must be masked
    cdef readonly Py_ssize_t max_frame_bytes
    cdef readonly Py_ssize_t max_message_bytes
    cdef Inflater _inflater                   # None without permessage-deflate
    # the last event's results
    cdef readonly int opcode
    cdef readonly object payload
    cdef readonly int close_code
    cdef readonly str close_reason
    cdef readonly str error
    # implementation state (frames.pyx owns it)
    cdef int _state
    cdef unsigned char _hdr[14]
    cdef Py_ssize_t _hdr_len, _hdr_need
    cdef bint _fin, _rsv1, _masked
    cdef int _frame_op
    cdef unsigned long long _frame_left
    cdef unsigned char _mask[4]
    cdef unsigned int _mask_pos
    cdef bytearray _control                   # a control frame's payload
    cdef bytearray _message                   # the data message being assembled
    cdef bytes _whole                         # an unfragmented message's bytes, filled in place
    cdef int _message_op                      # OP_TEXT / OP_BINARY while one is open, else 0
    cdef bint _compressed
    cdef unsigned int _utf8_state
    cdef Py_ssize_t _utf8_done                # bytes of _message already validated

    # Decode from data[0:n]; ``consumed[0]`` is set to the bytes used.  Returns one EV_*;
    # call again with the rest while it returns EV_MESSAGE, EV_PING, EV_PONG or EV_CLOSE.
    cdef int next(self, const unsigned char* data, Py_ssize_t n, Py_ssize_t* consumed) except -1


# One frame: FIN, RSV1 (a compressed message's first frame), opcode, the shortest length form,
# and, when ``mask`` is true, a fresh 4-byte key with the payload masked.
cdef bytes encode_frame(int opcode, const unsigned char* payload, Py_ssize_t n, bint fin,
                        bint rsv1, bint mask)
# A close frame: ``code`` (omitted when 1005) and ``reason`` (UTF-8, cut to fit 123 bytes at a
# character boundary).
cdef bytes encode_close(int code, str reason, bint mask)
