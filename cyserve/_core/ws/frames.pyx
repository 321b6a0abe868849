# cython: language_level=3
"""The RFC 6455 §5 frame codec both WebSocket roles share; the contract is ``frames.pxd``.
Its two byte-level tools live next to it: ``utf8`` (text validation) and ``mask`` (the XOR and
the client's keys).

Decoder states (``_state``) and their invariants:

- ``_S_HEADER``: ``_hdr[0:_hdr_len]`` holds the bytes of the next frame's header seen so far and
  ``_hdr_need`` how many it has in all (2 until the first two bytes are in, then 2 + the extended
  length + the masking key).  Each of the first two bytes is checked as soon as it arrives, so a
  bad opcode, reserved bit, mask bit or control-frame length fails before the rest of the header.
- ``_S_PAYLOAD``: the header was valid; ``_frame_left`` payload bytes are still due and
  ``_mask_pos`` is the offset (mod 4) of the next one into ``_mask``.  Payload is copied once,
  unmasked on the way, into where it ends up:

  * a control frame: its ``bytes`` when all of it is in the input, else ``_control``;
  * a message that is one frame (FIN and nothing before it): text all in the input is unmasked
    (on the stack when short) and decoded; otherwise the final ``bytes`` object is made (``_whole``,
    once 1/_WHOLE_RATIO of it is here) and filled in place, text being checked as it arrives;
  * a fragmented message: ``_message``, which for each frame is grown once by the frame's whole
    length (when 1/_WHOLE_RATIO of it is here; else piece by piece).  ``_utf8_done`` is where the
    next byte goes: the bytes of ``_message`` written (and, for text, validated) so far, so
    ``len(_message) - _utf8_done`` is the room still reserved for the current frame, and between
    frames ``_utf8_done == len(_message)``;
  * a compressed message: its inflated bytes, appended to ``_message``.
- ``_S_DEAD``: an ``EV_ERROR`` was returned; every later call returns it again, consuming nothing.

Across frames: ``_message_op`` is OP_TEXT / OP_BINARY while a data message is open (its first
frame's header was accepted and its FIN frame not yet complete), else 0; ``_compressed`` says
whether it had RSV1; for text, ``_utf8_state`` is the validator's state after the bytes written.

On EV_NONE everything given was consumed (a partial header is kept in ``_hdr``), so the role can
drop its whole receive buffer.  The decoder keeps decoding after EV_CLOSE: RFC 6455 §1.4 says the
data after a close frame is discarded, and the role is the one that stops feeding it.

Decisions (each tested; where wsproto or websockets differs, the differential test lists it):

- A length that is not in its minimal form (§5.2: "the minimal number of bytes MUST be used") and
  a 64-bit length with its most significant bit set (§5.2) are 1002.
- Limits (§10.4): a frame whose declared length passes ``max_frame_bytes`` is 1009 before any of
  its payload is read; an uncompressed message is 1009 as soon as a frame header declares more than
  ``max_message_bytes`` in all; a compressed one when its inflated size passes it (the inflater is
  bounded, so a deflate bomb costs at most the limit).  Fragments cost nothing but their bytes.
  Room for a long frame is made in one allocation only once 1/_WHOLE_RATIO of it has arrived, so
  declaring a long frame and sending little of it cannot make us allocate much more than was sent.
- Close codes (§7.4.1, §7.4.2, and the IANA registry of §11.7): 1000-1003 and 1007-1014, and
  3000-4999, are accepted; 1004, 1005, 1006, 1015 and everything else are 1002.  The code is
  checked before the reason, whose invalid UTF-8 is 1007 (§5.5.1, §8.1).
- Text (§5.6, §8.1) is validated incrementally by ``utf8``'s automaton over RFC 3629 §4's byte
  sequences: a message fails with 1007 on the first byte that no valid text can continue, even in
  a frame whose remaining payload has not arrived, and at its FIN frame if a sequence is cut short.
  A one-frame message that is all in the input at once is checked by CPython's decoder as it makes
  the ``str`` (one pass instead of two; it is as strict, and the tests hold both to one verdict).
- RSV1 (RFC 7692 §6) is a compressed message's mark: only on a data message's first frame and
  only with an inflater; on a control frame or a continuation, and RSV2/RSV3 always, it is 1002.
  Corrupt compressed data is 1007, the payload being inconsistent with the message (§7.4.1).
"""
cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8String, PyUnicode_DecodeUTF8
from libc.string cimport memcpy

import zlib

from cyserve._core.ws.deflate cimport Inflater
from cyserve._core.ws.mask cimport fresh_key, mask_copy
from cyserve._core.ws.utf8 cimport UTF8_ACCEPT, UTF8_REJECT, utf8_scan

# Decoder states (see the module docstring for their invariants).
cdef enum:
    _S_HEADER = 0
    _S_PAYLOAD = 1
    _S_DEAD = 2

cdef enum:
    _MAX_CONTROL_PAYLOAD = 125      # §5.5
    _MAX_CLOSE_REASON_BYTES = 123   # §5.5: 125 less the 2-byte code
    _STACK_TEXT_BYTES = 512         # a whole masked text frame up to this is unmasked on the stack
    _WHOLE_RATIO = 32               # a frame's room is reserved once 1/32 of it is here

# Corrupt deflate data: the Inflater contract says ValueError; zlib's own error is caught too so a
# peer can never make the decoder raise (see _inflate).
cdef tuple _INFLATE_ERRORS = (ValueError, zlib.error)


cdef inline bint _close_code_ok(unsigned int code) noexcept:
    # §7.4.1 and the registry (§11.7): 1004 is reserved, 1005, 1006 and 1015 are never sent;
    # §7.4.2: 0-999 are unused, 1016-2999 reserved for future RFCs, 3000-4999 for others.
    return (1000 <= code <= 1003) or (1007 <= code <= 1014) or (3000 <= code <= 4999)


# --- decoder ---------------------------------------------------------------------------------

@cython.final
cdef class FrameDecoder:
    """Incremental decoder of one direction of a WebSocket connection; see frames.pxd/.pyi."""

    def __cinit__(self, *, bint expect_masked, Py_ssize_t max_frame_bytes,
                  Py_ssize_t max_message_bytes, Inflater inflater=None):
        if max_frame_bytes <= 0:
            raise ValueError(f"max_frame_bytes must be positive, got {max_frame_bytes}")
        if max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
        self.expect_masked = expect_masked
        self.max_frame_bytes = max_frame_bytes
        self.max_message_bytes = max_message_bytes
        self._inflater = inflater
        self.opcode = 0
        self.payload = None
        self.close_code = 0
        self.close_reason = None
        self.error = None
        self._state = _S_HEADER
        self._hdr_len = 0
        self._hdr_need = 2
        self._fin = False
        self._rsv1 = False
        self._masked = False
        self._frame_op = 0
        self._frame_left = 0
        self._mask_pos = 0
        self._control = bytearray()
        self._message = bytearray()
        self._whole = None
        self._message_op = 0
        self._compressed = False
        self._utf8_state = UTF8_ACCEPT
        self._utf8_done = 0

    cdef int next(self, const unsigned char* data, Py_ssize_t n, Py_ssize_t* consumed) except -1:
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t take
        cdef int ev
        consumed[0] = 0
        if self._state == _S_DEAD:
            return EV_ERROR
        while True:
            if self._state == _S_HEADER:
                if self._hdr_len < 2:
                    # The first two bytes one at a time: each is checked as soon as it is in.
                    if self._hdr_len == 0:
                        if i == n:
                            consumed[0] = i
                            return EV_NONE
                        self._hdr[0] = data[i]
                        self._hdr_len = 1
                        i += 1
                        if _check_first(self) == EV_ERROR:
                            consumed[0] = i
                            return EV_ERROR
                    if i == n:
                        consumed[0] = i
                        return EV_NONE
                    self._hdr[1] = data[i]
                    self._hdr_len = 2
                    i += 1
                    if _check_second(self) == EV_ERROR:
                        consumed[0] = i
                        return EV_ERROR
                take = min(self._hdr_need - self._hdr_len, n - i)
                memcpy(self._hdr + self._hdr_len, data + i, take)
                self._hdr_len += take
                i += take
                if self._hdr_len < self._hdr_need:
                    consumed[0] = i
                    return EV_NONE
                if _check_header(self) == EV_ERROR:
                    consumed[0] = i
                    return EV_ERROR
            ev = _read_payload(self, data, n, &i)
            if ev != EV_NONE or self._state == _S_PAYLOAD:
                # An event, or the frame's payload is still due (then i == n).
                consumed[0] = i
                return ev
            # A frame ended with nothing to report (a message's non-final fragment): go on.

    def feed(self, data):
        """Decode ``data`` (any contiguous bytes-like object): the events found, as tuples."""
        cdef Py_buffer view
        cdef list events = []
        cdef Py_ssize_t at = 0
        cdef Py_ssize_t used
        cdef int ev
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            while True:
                ev = self.next(<const unsigned char*>view.buf + at, view.len - at, &used)
                at += used
                if ev == EV_NONE:
                    break
                if ev == EV_MESSAGE:
                    events.append(("message", self.opcode, self.payload))
                elif ev == EV_PING:
                    events.append(("ping", self.payload))
                elif ev == EV_PONG:
                    events.append(("pong", self.payload))
                elif ev == EV_CLOSE:
                    events.append(("close", self.close_code, self.close_reason))
                else:
                    events.append(("error", self.close_code, self.error))
                    break
        finally:
            PyBuffer_Release(&view)
        return events

    def __repr__(self):
        return (f"<FrameDecoder state={self._state} message_op={self._message_op} "
                f"frame_left={self._frame_left}>")


# The decoder's steps (module functions: frames.pxd declares only next() as its C face).


cdef int _fail(FrameDecoder dec, int code, str why) except -1:
    dec._state = _S_DEAD
    dec.close_code = code
    dec.error = why
    dec.close_reason = None
    dec.opcode = 0
    dec.payload = None
    dec._message = bytearray()
    dec._control = bytearray()
    dec._whole = None
    return EV_ERROR


cdef int _check_first(FrameDecoder dec) except -1:
    """The header's first byte (FIN, RSV, opcode), checked as soon as it is in."""
    cdef unsigned char b0 = dec._hdr[0]
    cdef int op = b0 & 0x0F
    dec._fin = (b0 & 0x80) != 0
    dec._rsv1 = (b0 & 0x40) != 0
    if b0 & 0x30:
        # §5.2: RSV2 and RSV3 MUST be 0; no extension we negotiate defines them.
        return _fail(dec, CLOSE_PROTOCOL_ERROR, "RSV2 or RSV3 set (RFC 6455 §5.2)")
    if op & 0x8:
        if op > OP_PONG:
            return _fail(dec, CLOSE_PROTOCOL_ERROR, "reserved control opcode (RFC 6455 §5.2)")
        if not dec._fin:
            return _fail(dec, CLOSE_PROTOCOL_ERROR, "fragmented control frame (RFC 6455 §5.5)")
        if dec._rsv1:
            return _fail(dec, CLOSE_PROTOCOL_ERROR, "RSV1 set on a control frame (RFC 7692 §6)")
    elif op > OP_BINARY:
        return _fail(dec, CLOSE_PROTOCOL_ERROR, "reserved data opcode (RFC 6455 §5.2)")
    elif op == OP_CONT:
        if dec._message_op == 0:
            return _fail(dec, CLOSE_PROTOCOL_ERROR,
                         "continuation frame with no message to continue (RFC 6455 §5.4)")
        if dec._rsv1:
            return _fail(dec, CLOSE_PROTOCOL_ERROR,
                         "RSV1 set on a continuation frame (RFC 7692 §6.1)")
    else:
        if dec._message_op != 0:
            return _fail(dec, CLOSE_PROTOCOL_ERROR,
                         "new data frame inside a fragmented message (RFC 6455 §5.4)")
        if dec._rsv1 and dec._inflater is None:
            return _fail(dec, CLOSE_PROTOCOL_ERROR,
                         "RSV1 set without permessage-deflate (RFC 6455 §5.2)")
    dec._frame_op = op
    return EV_NONE


cdef int _check_second(FrameDecoder dec) except -1:
    """The header's second byte (MASK, the 7-bit length); sets ``_hdr_need``."""
    cdef unsigned char b1 = dec._hdr[1]
    cdef unsigned int len7 = b1 & 0x7F
    dec._masked = (b1 & 0x80) != 0
    if dec._masked != dec.expect_masked:
        # §5.1: a client masks every frame it sends, a server none.
        return _fail(dec, CLOSE_PROTOCOL_ERROR,
                     "unmasked frame from a client (RFC 6455 §5.1)" if dec.expect_masked
                     else "masked frame from a server (RFC 6455 §5.1)")
    if dec._frame_op >= OP_CLOSE and len7 > _MAX_CONTROL_PAYLOAD:
        return _fail(dec, CLOSE_PROTOCOL_ERROR,
                     "control frame payload over 125 bytes (RFC 6455 §5.5)")
    dec._hdr_need = 2 + (2 if len7 == 126 else 8 if len7 == 127 else 0) + (4 if dec._masked else 0)
    return EV_NONE


cdef int _check_header(FrameDecoder dec) except -1:
    """The whole header is in: its length (form and limits) and masking key; opens a message
    on a TEXT/BINARY frame, and switches to _S_PAYLOAD."""
    cdef unsigned long long length = dec._hdr[1] & 0x7F
    cdef Py_ssize_t at = 2
    cdef int j
    if length == 126:
        length = (<unsigned long long>dec._hdr[2] << 8) | dec._hdr[3]
        at = 4
        if length < 126:
            return _fail(dec, CLOSE_PROTOCOL_ERROR,
                         "16-bit length for a payload under 126 bytes (RFC 6455 §5.2)")
    elif length == 127:
        length = 0
        for j in range(2, 10):
            length = (length << 8) | dec._hdr[j]
        at = 10
        if length >> 63:
            return _fail(dec, CLOSE_PROTOCOL_ERROR,
                         "64-bit length with the top bit set (RFC 6455 §5.2)")
        if length < 65536:
            return _fail(dec, CLOSE_PROTOCOL_ERROR,
                         "64-bit length for a payload under 64 KiB (RFC 6455 §5.2)")
    if length > <unsigned long long>dec.max_frame_bytes:
        # §10.4: refused on its header, before any of the payload is read (or buffered).
        return _fail(dec, CLOSE_TOO_BIG, "frame larger than max_frame_bytes")
    if dec._masked:
        memcpy(dec._mask, dec._hdr + at, 4)
        dec._mask_pos = 0
    if dec._frame_op < OP_CLOSE:
        if dec._frame_op != OP_CONT:
            dec._message_op = dec._frame_op
            dec._compressed = dec._rsv1
            dec._utf8_state = UTF8_ACCEPT
            dec._utf8_done = 0
        if (not dec._compressed and
                <unsigned long long>PyByteArray_GET_SIZE(dec._message) + length
                > <unsigned long long>dec.max_message_bytes):
            # §10.4: the message would pass its limit; known from this header already.
            return _fail(dec, CLOSE_TOO_BIG, "message larger than max_message_bytes")
    dec._frame_left = length
    dec._hdr_len = 0
    dec._hdr_need = 2
    dec._state = _S_PAYLOAD
    return EV_NONE


cdef inline void _unmask_into(FrameDecoder dec, unsigned char* dst, const unsigned char* src,
                              Py_ssize_t k) noexcept:
    if dec._masked:
        mask_copy(dst, src, k, dec._mask, dec._mask_pos)
        dec._mask_pos = (dec._mask_pos + <unsigned int>(k & 3)) & 3
    else:
        memcpy(dst, src, k)


cdef bytes _take(FrameDecoder dec, const unsigned char* src, Py_ssize_t k):
    """A new bytes of the next k payload bytes, unmasked."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, k)
    _unmask_into(dec, <unsigned char*>PyBytes_AS_STRING(out), src, k)
    return out


cdef unsigned char* _grow(bytearray buf, Py_ssize_t k) except NULL:
    """Extend buf by k bytes (amortised: CPython over-allocates a growing bytearray) and
    return where they start.  No buffer of these bytearrays is ever exported."""
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(buf)
    PyByteArray_Resize(buf, old + k)
    return <unsigned char*>PyByteArray_AS_STRING(buf) + old


cdef int _read_payload(FrameDecoder dec, const unsigned char* data, Py_ssize_t n,
                       Py_ssize_t* pos) except -1:
    """Take what ``data[pos:n]`` holds of the current frame's payload; when the frame is
    complete, go back to _S_HEADER and return its event (EV_NONE for a non-final fragment)."""
    cdef Py_ssize_t i = pos[0]
    cdef Py_ssize_t k = n - i
    cdef bint whole
    cdef bytes piece
    cdef unsigned char* dst
    if <unsigned long long>k >= dec._frame_left:
        k = <Py_ssize_t>dec._frame_left
    whole = <unsigned long long>k == dec._frame_left
    if dec._frame_op >= OP_CLOSE:
        if whole and PyByteArray_GET_SIZE(dec._control) == 0:
            piece = _take(dec, data + i, k)
        else:
            _unmask_into(dec, _grow(dec._control, k), data + i, k)
            if not whole:
                pos[0] = i + k
                dec._frame_left -= <unsigned long long>k
                return EV_NONE
            piece = bytes(dec._control)
            PyByteArray_Resize(dec._control, 0)
        pos[0] = i + k
        dec._frame_left = 0
        dec._state = _S_HEADER
        return _control_event(dec, piece)
    if dec._compressed:
        return _inflate(dec, data, k, whole, pos)
    if dec._whole is None and dec._fin and PyByteArray_GET_SIZE(dec._message) == 0:
        # The message is this one frame (FIN, nothing before it).
        if whole and dec._message_op == OP_TEXT:
            pos[0] = i + k
            dec._frame_left = 0
            dec._state = _S_HEADER
            dec._message_op = 0
            return _whole_text(dec, data + i, k)
        if whole or dec._frame_left <= <unsigned long long>k * _WHOLE_RATIO:
            # Its final object, filled in place as the payload arrives: no bytearray to grow,
            # no copy at the end.  Made once 1/_WHOLE_RATIO of the payload is here, so a peer
            # cannot make us allocate much more than it sent by declaring a long frame.
            dec._whole = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>dec._frame_left)
    if dec._whole is not None:
        dst = <unsigned char*>PyBytes_AS_STRING(dec._whole) + (
            PyBytes_GET_SIZE(dec._whole) - <Py_ssize_t>dec._frame_left)
        _unmask_into(dec, dst, data + i, k)
        pos[0] = i + k
        dec._frame_left -= <unsigned long long>k
        if dec._message_op == OP_TEXT:
            dec._utf8_state = utf8_scan(dec._utf8_state, dst, k)
            if dec._utf8_state == UTF8_REJECT:
                return _fail(dec, CLOSE_INVALID_DATA, "invalid UTF-8 in a text message")
        if not whole:
            return EV_NONE
        dec._state = _S_HEADER
        return _whole_event(dec)
    if k:
        if PyByteArray_GET_SIZE(dec._message) == dec._utf8_done:
            # The frame's first bytes: make room for all of it at once when 1/_WHOLE_RATIO of
            # it is here (so a peer cannot make us allocate much more than it sent), else grow.
            _grow(dec._message, <Py_ssize_t>dec._frame_left
                  if dec._frame_left <= <unsigned long long>k * _WHOLE_RATIO else k)
        dst = <unsigned char*>PyByteArray_AS_STRING(dec._message) + dec._utf8_done
        _unmask_into(dec, dst, data + i, k)
        pos[0] = i + k
        dec._frame_left -= <unsigned long long>k
        dec._utf8_done += k
        if dec._message_op == OP_TEXT:
            # §8.1: fail as soon as the bytes that make the text invalid are here.
            dec._utf8_state = utf8_scan(dec._utf8_state, dst, k)
            if dec._utf8_state == UTF8_REJECT:
                return _fail(dec, CLOSE_INVALID_DATA, "invalid UTF-8 in a text message")
    if not whole:
        return EV_NONE
    dec._state = _S_HEADER
    if not dec._fin:
        return EV_NONE
    return _message_event(dec)


cdef int _whole_text(FrameDecoder dec, const unsigned char* src, Py_ssize_t k) except -1:
    """A one-frame text message all at src[0:k]: unmasked (on the stack when short), then decoded.
    All of it is here, so CPython's strict UTF-8 decoder (RFC 3629: no overlongs, surrogates or
    code points past U+10FFFF, like ours; the tests hold the two to the same verdicts) checks it
    in the one pass that makes the str, failing in this call as the incremental check would."""
    cdef unsigned char stack[_STACK_TEXT_BYTES]
    cdef const unsigned char* text = src
    cdef bytes heap
    if dec._masked:
        if k <= _STACK_TEXT_BYTES:
            _unmask_into(dec, stack, src, k)
            text = stack
        else:
            heap = _take(dec, src, k)
            text = <const unsigned char*>PyBytes_AS_STRING(heap)
    try:
        dec.payload = PyUnicode_DecodeUTF8(<const char*>text, k, NULL)
    except UnicodeDecodeError:
        return _fail(dec, CLOSE_INVALID_DATA, "invalid UTF-8 in a text message")
    dec.opcode = OP_TEXT
    return EV_MESSAGE


cdef int _whole_event(FrameDecoder dec) except -1:
    """The one-frame message in ``_whole`` is complete: hand it up."""
    cdef bytes whole = dec._whole
    dec._whole = None
    dec.opcode = dec._message_op
    dec._message_op = 0
    if dec.opcode == OP_BINARY:
        dec.payload = whole
        return EV_MESSAGE
    if dec._utf8_state != UTF8_ACCEPT:
        return _fail(dec, CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence")
    dec.payload = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(whole), PyBytes_GET_SIZE(whole), NULL)
    return EV_MESSAGE


cdef int _message_event(FrameDecoder dec) except -1:
    """The message's FIN frame is complete: hand ``_message`` up and reset it."""
    cdef const char* buf = PyByteArray_AS_STRING(dec._message)
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(dec._message)
    if dec._message_op == OP_TEXT:
        if dec._utf8_state != UTF8_ACCEPT:
            # §8.1: the message ends inside a character.
            return _fail(dec, CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence")
        dec.payload = PyUnicode_DecodeUTF8(buf, size, NULL)
    else:
        dec.payload = PyBytes_FromStringAndSize(buf, size)
    dec.opcode = dec._message_op
    dec._message_op = 0
    dec._compressed = False
    dec._utf8_done = 0
    # Resizing to 0 gives a large message's memory back.
    PyByteArray_Resize(dec._message, 0)
    return EV_MESSAGE


cdef int _inflate(FrameDecoder dec, const unsigned char* data, Py_ssize_t k, bint whole,
                  Py_ssize_t* pos) except -1:
    """A compressed message's payload (RFC 7692 §6.2): inflate the k bytes at data[pos:],
    and the message's tail once its FIN frame is complete, within max_message_bytes."""
    cdef bytes piece
    cdef bytes out
    cdef Py_ssize_t room
    if k:
        piece = _take(dec, data + pos[0], k)
        pos[0] += k
        dec._frame_left -= <unsigned long long>k
        room = dec.max_message_bytes - PyByteArray_GET_SIZE(dec._message)
        try:
            out = dec._inflater.feed(piece, room)
        except _INFLATE_ERRORS:
            return _fail(dec, CLOSE_INVALID_DATA, "corrupt compressed data (RFC 7692 §7.2.2)")
        if _append_inflated(dec, out, room) == EV_ERROR:
            return EV_ERROR
    if not whole:
        return EV_NONE
    dec._state = _S_HEADER
    if not dec._fin:
        return EV_NONE
    room = dec.max_message_bytes - PyByteArray_GET_SIZE(dec._message)
    try:
        out = dec._inflater.end_message(room)
    except _INFLATE_ERRORS:
        return _fail(dec, CLOSE_INVALID_DATA, "corrupt compressed data (RFC 7692 §7.2.2)")
    if _append_inflated(dec, out, room) == EV_ERROR:
        return EV_ERROR
    return _message_event(dec)


cdef int _append_inflated(FrameDecoder dec, bytes out, Py_ssize_t room) except -1:
    cdef Py_ssize_t size = PyBytes_GET_SIZE(out)
    cdef unsigned char* dst
    if size > room:
        # §10.4 / RFC 7692 §8.1: the inflated message passed its limit.
        return _fail(dec, CLOSE_TOO_BIG, "message larger than max_message_bytes")
    if size == 0:
        return EV_NONE
    dst = _grow(dec._message, size)
    memcpy(dst, PyBytes_AS_STRING(out), size)
    dec._utf8_done += size
    if dec._message_op == OP_TEXT:
        dec._utf8_state = utf8_scan(dec._utf8_state, dst, size)
        if dec._utf8_state == UTF8_REJECT:
            return _fail(dec, CLOSE_INVALID_DATA, "invalid UTF-8 in a text message")
    return EV_NONE


cdef int _control_event(FrameDecoder dec, bytes body) except -1:
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(body)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(body)
    cdef unsigned int code
    dec.opcode = dec._frame_op
    dec.payload = body
    if dec._frame_op == OP_PING:
        return EV_PING
    if dec._frame_op == OP_PONG:
        return EV_PONG
    # §5.5.1: an optional 2-byte code, then an optional UTF-8 reason.
    if size == 0:
        dec.close_code = CLOSE_NO_STATUS      # §7.1.5
        dec.close_reason = ""
        return EV_CLOSE
    if size == 1:
        return _fail(dec, CLOSE_PROTOCOL_ERROR,
                     "close frame with a 1-byte payload (RFC 6455 §5.5.1)")
    code = (<unsigned int>p[0] << 8) | p[1]
    if not _close_code_ok(code):
        return _fail(dec, CLOSE_PROTOCOL_ERROR, f"close code {code} not allowed (RFC 6455 §7.4)")
    if utf8_scan(UTF8_ACCEPT, p + 2, size - 2) != UTF8_ACCEPT:
        return _fail(dec, CLOSE_INVALID_DATA, "close reason is not UTF-8 (RFC 6455 §5.5.1)")
    dec.close_code = code
    dec.close_reason = PyUnicode_DecodeUTF8(<const char*>p + 2, size - 2, NULL)
    return EV_CLOSE


# --- encoder ---------------------------------------------------------------------------------



cdef bytes encode_frame(int opcode, const unsigned char* payload, Py_ssize_t n, bint fin,
                        bint rsv1, bint mask):
    cdef Py_ssize_t head = 2
    cdef bytes out
    cdef unsigned char* p
    cdef unsigned char* key
    cdef int j
    if opcode < 0 or opcode > 0xF:
        raise ValueError(f"an opcode is 4 bits, got {opcode}")
    if opcode & 0x8:
        if opcode > OP_PONG:
            raise ValueError(f"not a control opcode: {opcode:#x}")
        # §5.5: control frames are never fragmented, carry at most 125 bytes, and (RFC 7692 §6)
        # are never compressed.
        if n > _MAX_CONTROL_PAYLOAD:
            raise ValueError(f"control frame payload is {n} bytes, more than 125")
        if not fin:
            raise ValueError("control frames cannot be fragmented")
        if rsv1:
            raise ValueError("control frames cannot have RSV1 set")
    elif opcode > OP_BINARY:
        raise ValueError(f"not a data opcode: {opcode:#x}")
    elif rsv1 and opcode == OP_CONT:
        raise ValueError("RSV1 belongs on a message's first frame, never on a continuation")
    if n < 0:
        raise ValueError(f"negative payload length {n}")
    # §5.2: the shortest length form.
    if n >= 65536:
        head += 8
    elif n >= 126:
        head += 2
    if mask:
        head += 4
    out = PyBytes_FromStringAndSize(NULL, head + n)
    p = <unsigned char*>PyBytes_AS_STRING(out)
    p[0] = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if n >= 65536:
        p[1] = 127
        for j in range(8):
            p[2 + j] = (<unsigned long long>n >> (56 - 8 * j)) & 0xFF
    elif n >= 126:
        p[1] = 126
        p[2] = (n >> 8) & 0xFF
        p[3] = n & 0xFF
    else:
        p[1] = <unsigned char>n
    if mask:
        p[1] |= 0x80
        key = p + head - 4
        fresh_key(key)
        mask_copy(p + head, payload, n, key, 0)
    elif n:
        memcpy(p + head, payload, n)
    return out


cdef bytes encode_close(int code, str reason, bint mask):
    cdef bytes raw
    cdef Py_ssize_t cut
    cdef const unsigned char* r
    cdef unsigned char body[_MAX_CONTROL_PAYLOAD]
    if code == CLOSE_NO_STATUS:
        # §7.1.5: 1005 is what an empty close frame means; no code, so no reason either (§5.5.1).
        if reason:
            raise ValueError("a close frame without a code (1005) cannot carry a reason")
        return encode_frame(OP_CLOSE, NULL, 0, True, False, mask)
    if code < 0 or not _close_code_ok(<unsigned int>code):
        raise ValueError(f"close code {code} cannot be sent (RFC 6455 §7.4)")
    raw = PyUnicode_AsUTF8String(reason) if reason else b""
    cut = PyBytes_GET_SIZE(raw)
    r = <const unsigned char*>PyBytes_AS_STRING(raw)
    if cut > _MAX_CLOSE_REASON_BYTES:
        # Cut at a character boundary: back off while the first byte left out is a UTF8-tail.
        cut = _MAX_CLOSE_REASON_BYTES
        while cut > 0 and (r[cut] & 0xC0) == 0x80:
            cut -= 1
    body[0] = (code >> 8) & 0xFF
    body[1] = code & 0xFF
    memcpy(body + 2, r, cut)
    return encode_frame(OP_CLOSE, body, 2 + cut, True, False, mask)


def encode(int opcode, payload, bint fin=True, bint rsv1=False, bint mask=False):
    """One frame of ``payload`` (bytes-like, or str sent as UTF-8); see frames.pyi."""
    cdef Py_buffer view
    if isinstance(payload, str):
        payload = PyUnicode_AsUTF8String(payload)
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        return encode_frame(opcode, <const unsigned char*>view.buf, view.len, fin, rsv1, mask)
    finally:
        PyBuffer_Release(&view)


def encode_close_frame(int code, str reason="", bint mask=False):
    """A close frame; see frames.pyi."""
    return encode_close(code, reason, mask)
