# cython: language_level=3
"""The cyserve-push/1 frame codec (``docs/push-protocol.md``); the contract is ``frames.pxd``.

Every rule a frame must follow on its own is one row of ``_RULES`` (who may send the kind, its
flag bits, and what its id, name and payload may be); the binary and the JSON decoders and both
encoders read the same row, so the two framings cannot drift apart.

Decoder states (``_state``) and their invariants:

- ``_S_DETECT`` (``FRAMING_AUTO``, a server before the client's first byte): nothing is buffered.
  The first byte chooses (docs §2): ``{`` selects JSON lines, anything else binary.  A binary
  length can never start with ``{`` (0x7B) since ``max_frame_bytes`` <= 1 GiB (first byte <= 0x40).
- ``_S_PREFIX`` (binary): ``_prefix[0:_prefix_len]`` holds the bytes of the next length seen so
  far (0-3) and ``_partial`` is empty.  The length is checked as soon as its 4 bytes are in, so
  a frame over the limit fails before any of it is buffered.
- ``_S_BODY`` (binary): ``_need`` (HEADER_BYTES..max_frame_bytes) bytes of frame are due after the
  prefix; ``_partial`` holds those already seen when the frame is split across inputs.  A frame
  wholly inside the input is parsed where it lies (no copy into ``_partial``).  ``_partial`` grows
  only by what arrived, so declaring a long frame and sending little of it costs little.
- ``_S_LINE`` (JSON lines): ``_partial`` holds the start of a line whose ``\\n`` has not arrived
  (at most ``max_frame_bytes``: one byte more without a newline is a violation).  Lines holding
  only JSON whitespace are skipped (a person at ``nc`` pressing Enter).
- ``_S_MESSAGE`` (WebSocket framings): stateless; each message is one frame.
- ``_S_DEAD``: an ``EV_ERROR`` was returned; ``violation`` says why and every later call
  returns ``EV_ERROR`` again, consuming nothing.

On EV_NONE everything given was consumed, so the role can drop its whole receive buffer; on
EV_FRAME the bytes up to the end of that frame were; on EV_ERROR up to the byte that showed it.

The scans (the length prefix, the header checks, the name's bytes, the search for ``\\n``) run
over ``const unsigned char*`` with no Python objects; a frame's ``str``/``bytes``/JSON values are
made once its bytes are known to be right.  JSON is orjson's (strict RFC 8259: UTF-8 checked, no
NaN, no lone surrogates; integers past 64 bits become floats, which no integer field accepts).
"""
cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.long cimport PyLong_AsUnsignedLongLong, PyLong_FromUnsignedLongLong
from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.string cimport memchr, memcpy

import orjson

# Decoder states (see the module docstring for their invariants).
cdef enum:
    _S_DETECT = 0
    _S_PREFIX = 1
    _S_BODY = 2
    _S_LINE = 3
    _S_MESSAGE = 4
    _S_DEAD = 5

# What one row of _RULES allows (docs §4, the table of kinds).
cdef enum:
    _FROM_CLIENT = 1
    _FROM_SERVER = 2
    _ID_ZERO = 0          # the id is 0 (JSON: "id" absent or 0)
    _ID_POSITIVE = 1      # a request or sequence number: 1 .. 2**64-1
    _ID_ANY = 2           # 0 .. 2**64-1
    _NAME_EMPTY = 0       # "" (JSON: "name" absent or "")
    _NAME_REQUIRED = 1    # 1 .. 255 bytes
    _NAME_ANY = 2         # 0 .. 255 bytes
    _P_OBJECT = 0         # a JSON object (HELLO, WELCOME), whatever the framing
    _P_TEXT = 1           # UTF-8 text (REFUSE, ERROR, CLOSE): str
    _P_DATA = 2           # the connection's codec: bytes in binary framings, any JSON value else
    _P_GAP = 3            # the last lost sequence number (u64 / JSON integer), >= the id
    _P_NONE = 4           # nothing (binary: empty; JSON: "data" absent or null)

cdef enum:
    _SKIP = 3             # _parse_line: a blank line, no frame

cdef struct _Rule:
    unsigned char senders
    unsigned char flags
    unsigned char id_rule
    unsigned char name_rule
    unsigned char payload

cdef _Rule _RULES[KIND_MAX + 1]


cdef void _rule(int kind, unsigned char senders, unsigned char flags, unsigned char id_rule,
                unsigned char name_rule, unsigned char payload) noexcept:
    _RULES[kind].senders = senders
    _RULES[kind].flags = flags
    _RULES[kind].id_rule = id_rule
    _RULES[kind].name_rule = name_rule
    _RULES[kind].payload = payload


# Row 0 (no kind) allows nothing: a sender mask of 0 refuses it before anything else is read.
_rule(0, 0, 0, _ID_ZERO, _NAME_EMPTY, _P_NONE)
_rule(KIND_HELLO, _FROM_CLIENT, 0, _ID_ZERO, _NAME_REQUIRED, _P_OBJECT)
_rule(KIND_WELCOME, _FROM_SERVER, 0, _ID_ZERO, _NAME_REQUIRED, _P_OBJECT)
_rule(KIND_REFUSE, _FROM_SERVER, 0, _ID_ZERO, _NAME_REQUIRED, _P_TEXT)
_rule(KIND_CALL, _FROM_CLIENT, 0, _ID_POSITIVE, _NAME_REQUIRED, _P_DATA)
_rule(KIND_REPLY, _FROM_SERVER, 0, _ID_POSITIVE, _NAME_EMPTY, _P_DATA)
_rule(KIND_ERROR, _FROM_SERVER, 0, _ID_ANY, _NAME_REQUIRED, _P_TEXT)
_rule(KIND_PUSH, _FROM_SERVER, FLAG_ACK_REQUESTED, _ID_POSITIVE, _NAME_ANY, _P_DATA)
_rule(KIND_ACK, _FROM_CLIENT, 0, _ID_POSITIVE, _NAME_EMPTY, _P_NONE)
_rule(KIND_GAP, _FROM_SERVER, 0, _ID_POSITIVE, _NAME_EMPTY, _P_GAP)
_rule(KIND_PING, _FROM_CLIENT | _FROM_SERVER, 0, _ID_ANY, _NAME_EMPTY, _P_NONE)
_rule(KIND_PONG, _FROM_CLIENT | _FROM_SERVER, 0, _ID_ANY, _NAME_EMPTY, _P_NONE)
_rule(KIND_CLOSE, _FROM_CLIENT | _FROM_SERVER, 0, _ID_ZERO, _NAME_REQUIRED, _P_TEXT)

# The protocol's vocabulary (docs §1, §6, §7, §9): one spelling, used by the role, hub and client.
VERSION = "cyserve-push/1"
KIND_NAMES = ("", "hello", "welcome", "refuse", "call", "reply", "error", "push", "ack", "gap",
              "ping", "pong", "close")
cdef dict _KIND_BY_NAME = {name: kind for kind, name in enumerate(KIND_NAMES) if name}
CODECS = frozenset({"json", "bytes", "xml"})
CLOSE_CODES = frozenset({"normal", "going_away", "idle_timeout", "slow_consumer", "policy",
                         "protocol_error", "too_large", "replaced", "internal_error"})
REFUSE_CODES = frozenset({"unauthorized", "unsupported_version", "unsupported_codec",
                          "bad_hello", "server_full", "going_away"})
ERROR_CODES = frozenset({"unknown_command", "bad_payload", "handler_error", "too_large"})

cdef tuple _VIOLATION_CODES = ("", "protocol_error", "too_large")
cdef tuple _SENDER_NAMES = ("", "client", "server")

cdef object _loads = orjson.loads
cdef object _dumps = orjson.dumps
cdef object _JSONDecodeError = orjson.JSONDecodeError
cdef int _OPT_NEWLINE = orjson.OPT_APPEND_NEWLINE

cdef str _EMPTY = ""
cdef bytes _NO_BYTES = b""
# The JSON keys (docs §3.2), interned once.
cdef str _K_T = "t"
cdef str _K_ID = "id"
cdef str _K_NAME = "name"
cdef str _K_DATA = "data"
cdef str _K_ACK = "ack"

# '{"t":"push","id":' -- a JSON push up to its sequence number (PushTemplate's head).
cdef bytes _JSON_PUSH_HEAD = b'{"t":"push","id":'
cdef unsigned long long _U64_MAX = 0xFFFFFFFFFFFFFFFF


# --- byte helpers ------------------------------------------------------------------------------

cdef inline unsigned long long _be64(const unsigned char* p) noexcept:
    return ((<unsigned long long>p[0] << 56) | (<unsigned long long>p[1] << 48) |
            (<unsigned long long>p[2] << 40) | (<unsigned long long>p[3] << 32) |
            (<unsigned long long>p[4] << 24) | (<unsigned long long>p[5] << 16) |
            (<unsigned long long>p[6] << 8) | <unsigned long long>p[7])


cdef inline unsigned long long _be32(const unsigned char* p) noexcept:
    return ((<unsigned long long>p[0] << 24) | (<unsigned long long>p[1] << 16) |
            (<unsigned long long>p[2] << 8) | <unsigned long long>p[3])


cdef inline void _put64(unsigned char* p, unsigned long long v) noexcept:
    cdef int j
    for j in range(8):
        p[j] = (v >> (56 - 8 * j)) & 0xFF


cdef inline void _put32(unsigned char* p, unsigned long long v) noexcept:
    p[0] = (v >> 24) & 0xFF
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef inline Py_ssize_t _put_decimal(unsigned char* p, unsigned long long v) noexcept:
    """``v`` in decimal at ``p`` (at most 20 digits); returns the digits written."""
    cdef unsigned char digits[20]
    cdef Py_ssize_t k = 0
    cdef Py_ssize_t j
    while True:
        digits[k] = <unsigned char>(48 + v % 10)
        k += 1
        v //= 10
        if v == 0:
            break
    for j in range(k):
        p[j] = digits[k - 1 - j]
    return k


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline bint _has_control(const unsigned char* p, Py_ssize_t n) noexcept:
    """A C0 control or DEL among the bytes (docs §3.3: names carry none).  UTF-8 continuation
    and lead bytes are all >= 0x80, so a byte scan sees every such character."""
    cdef Py_ssize_t j
    for j in range(n):
        if p[j] < 0x20 or p[j] == 0x7F:
            return True
    return False


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline bint _blank(const unsigned char* p, Py_ssize_t n) noexcept:
    """Only JSON whitespace (RFC 8259 §2: space, tab, CR; LF ended the line)."""
    cdef Py_ssize_t j
    for j in range(n):
        if p[j] != 0x20 and p[j] != 0x09 and p[j] != 0x0D:
            return False
    return True


cdef inline bint _id_ok(unsigned char id_rule, unsigned long long id) noexcept:
    if id_rule == _ID_ZERO:
        return id == 0
    if id_rule == _ID_POSITIVE:
        return id != 0
    return True


cdef inline bint _name_ok(unsigned char name_rule, Py_ssize_t n) noexcept:
    if name_rule == _NAME_EMPTY:
        return n == 0
    if name_rule == _NAME_REQUIRED:
        return n != 0
    return True


cdef str _id_words(unsigned char id_rule):
    return "must be 0" if id_rule == _ID_ZERO else "must be at least 1"


cdef str _name_words(unsigned char name_rule):
    return "must be empty" if name_rule == _NAME_EMPTY else "must not be empty"


# --- values ------------------------------------------------------------------------------------

@cython.final
@cython.freelist(32)
cdef class Frame:
    """One frame: kind, flags, id, name, payload (see frames.pyi)."""

    def __init__(self, int kind, unsigned long long id=0, str name="", object payload=None,
                 int flags=0):
        self.kind = kind
        self.flags = flags
        self.id = id
        self.name = name
        self.payload = payload

    def __eq__(self, other):
        cdef Frame o
        if not isinstance(other, Frame):
            return NotImplemented
        o = <Frame>other
        return (self.kind == o.kind and self.flags == o.flags and self.id == o.id
                and self.name == o.name and type(self.payload) is type(o.payload)
                and self.payload == o.payload)

    __hash__ = None

    def __repr__(self):
        kind = KIND_NAMES[self.kind] if 0 < self.kind <= KIND_MAX else str(self.kind)
        return (f"Frame({kind}, id={self.id}, name={self.name!r}, payload={self.payload!r}, "
                f"flags={self.flags:#x})")


cdef inline Frame _frame(int kind, int flags, unsigned long long id, str name, object payload):
    cdef Frame f = Frame.__new__(Frame)
    f.kind = kind
    f.flags = flags
    f.id = id
    f.name = name
    f.payload = payload
    return f


@cython.final
cdef class Violation:
    """Why a decoder died (see frames.pyi)."""

    def __init__(self, int kind, str reason):
        if kind != VIOLATION_PROTOCOL_ERROR and kind != VIOLATION_TOO_LARGE:
            raise ValueError(f"not a violation kind: {kind}")
        self.kind = kind
        self.code = _VIOLATION_CODES[kind]
        self.reason = reason

    def __eq__(self, other):
        if not isinstance(other, Violation):
            return NotImplemented
        return self.kind == (<Violation>other).kind and self.reason == (<Violation>other).reason

    __hash__ = None

    def __repr__(self):
        return f"Violation({self.code}, {self.reason!r})"


# --- decoder -----------------------------------------------------------------------------------

@cython.final
cdef class FrameDecoder:
    """Decoder of the frames one peer sends on one connection; see frames.pxd/.pyi."""

    def __cinit__(self, Py_ssize_t max_frame_bytes, framing=None, *, bint client=False):
        cdef int f = FRAMING_AUTO if framing is None else framing
        if not MIN_FRAME_LIMIT <= max_frame_bytes <= MAX_FRAME_LIMIT:
            raise ValueError(f"max_frame_bytes must be within {MIN_FRAME_LIMIT}.."
                             f"{MAX_FRAME_LIMIT}, got {max_frame_bytes}")
        if f < FRAMING_AUTO or f > FRAMING_WS_TEXT:
            raise ValueError(f"unknown framing {framing!r}")
        if f == FRAMING_AUTO and client:
            # Only a server detects: the client chose the framing, and the server answers in it.
            raise ValueError("a client's decoder needs its framing (it chose it)")
        self.framing = f
        self.client = client
        self.max_frame_bytes = max_frame_bytes
        self.frame = None
        self.violation = None
        self._prefix_len = 0
        self._need = 0
        self._partial = bytearray()
        self._senders = _FROM_SERVER if client else _FROM_CLIENT
        if f == FRAMING_AUTO:
            self._state = _S_DETECT
        elif f == FRAMING_BINARY:
            self._state = _S_PREFIX
        elif f == FRAMING_JSON_LINES:
            self._state = _S_LINE
        else:
            self._state = _S_MESSAGE

    cdef int next(self, const unsigned char* data, Py_ssize_t n, Py_ssize_t* consumed) except -1:
        consumed[0] = 0
        if self._state == _S_DEAD:
            return EV_ERROR
        if self._state == _S_MESSAGE:
            raise ValueError("a WebSocket framing decodes whole messages: use message()")
        if self._state == _S_DETECT:
            if n == 0:
                return EV_NONE
            # docs §2: the client's first byte chooses the framing.
            if data[0] == 0x7B:
                self.framing = FRAMING_JSON_LINES
                self._state = _S_LINE
            else:
                self.framing = FRAMING_BINARY
                self._state = _S_PREFIX
        if self._state == _S_LINE:
            return _next_line(self, data, n, consumed)
        return _next_binary(self, data, n, consumed)

    cdef int message(self, object message) except -1:
        cdef Py_buffer view
        cdef Py_ssize_t size
        cdef int ev
        if self._state == _S_DEAD:
            return EV_ERROR
        if self._state != _S_MESSAGE:
            raise ValueError("a TCP framing decodes a byte stream: use next()")
        if self.framing == FRAMING_WS_TEXT:
            if isinstance(message, str):
                try:
                    PyUnicode_AsUTF8AndSize(message, &size)
                except UnicodeEncodeError:
                    return _fail(self, VIOLATION_PROTOCOL_ERROR, "a text message is not UTF-8")
            else:
                size = len(message)
            if size > self.max_frame_bytes:
                return _too_large(self, size)
            try:
                value = _loads(message)
            except _JSONDecodeError:
                return _fail(self, VIOLATION_PROTOCOL_ERROR, "a text message is not one JSON value")
            return _from_json(self, value)
        PyObject_GetBuffer(message, &view, PyBUF_SIMPLE)
        try:
            if view.len > self.max_frame_bytes:
                return _too_large(self, view.len)
            if view.len < HEADER_BYTES:
                return _fail(self, VIOLATION_PROTOCOL_ERROR,
                             f"frame of {view.len} bytes is shorter than the 11-byte header")
            return _parse_binary(self, <const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def feed(self, data):
        """Decode the next piece of the stream (TCP framings) or one whole message (WebSocket
        framings): the frames it completes, in order, then the violation if one was found."""
        cdef Py_buffer view
        cdef list out = []
        cdef Py_ssize_t at = 0
        cdef Py_ssize_t used
        cdef int ev
        if self._state == _S_MESSAGE or (self._state == _S_DEAD and
                                         self.framing >= FRAMING_WS_BINARY):
            if self.message(data) == EV_FRAME:
                out.append(self.frame)
            else:
                out.append(self.violation)
            return out
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            while True:
                ev = self.next(<const unsigned char*>view.buf + at, view.len - at, &used)
                at += used
                if ev == EV_NONE:
                    break
                if ev == EV_FRAME:
                    out.append(self.frame)
                else:
                    out.append(self.violation)
                    break
        finally:
            PyBuffer_Release(&view)
        return out

    def __repr__(self):
        return (f"<FrameDecoder framing={self.framing} state={self._state} "
                f"buffered={PyByteArray_GET_SIZE(self._partial)}>")


cdef int _fail(FrameDecoder dec, int kind, str reason) except -1:
    dec._state = _S_DEAD
    dec.violation = Violation(kind, reason)
    dec.frame = None
    dec._partial = bytearray()
    return EV_ERROR


cdef int _too_large(FrameDecoder dec, unsigned long long size) except -1:
    # docs §10: refused on its declared size, before any of it is buffered.
    return _fail(dec, VIOLATION_TOO_LARGE,
                 f"frame of {size} bytes is over max_frame_bytes ({dec.max_frame_bytes})")


cdef int _next_binary(FrameDecoder dec, const unsigned char* data, Py_ssize_t n,
                      Py_ssize_t* consumed) except -1:
    """One frame (or as much of one as ``data`` holds) of the binary framing."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t take, have
    cdef unsigned long long length
    cdef int ev
    if dec._state == _S_PREFIX:
        if dec._prefix_len == 0 and n >= PREFIX_BYTES:
            length = _be32(data)
            i = PREFIX_BYTES
        else:
            take = min(PREFIX_BYTES - dec._prefix_len, n)
            memcpy(dec._prefix + dec._prefix_len, data, take)
            dec._prefix_len += take
            i = take
            if dec._prefix_len < PREFIX_BYTES:
                consumed[0] = i
                return EV_NONE
            length = _be32(dec._prefix)
            dec._prefix_len = 0
        consumed[0] = i
        if length > <unsigned long long>dec.max_frame_bytes:
            return _too_large(dec, length)
        if length < HEADER_BYTES:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         f"frame of {length} bytes is shorter than the 11-byte header")
        dec._need = <Py_ssize_t>length
        dec._state = _S_BODY
    have = PyByteArray_GET_SIZE(dec._partial)
    if have == 0 and n - i >= dec._need:
        # The whole frame is in the input: parse it where it lies.
        ev = _parse_binary(dec, data + i, dec._need)
        i += dec._need
    else:
        take = min(dec._need - have, n - i)
        PyByteArray_Resize(dec._partial, have + take)
        memcpy(<unsigned char*>PyByteArray_AS_STRING(dec._partial) + have, data + i, take)
        i += take
        if have + take < dec._need:
            consumed[0] = i
            return EV_NONE
        ev = _parse_binary(dec, <const unsigned char*>PyByteArray_AS_STRING(dec._partial),
                           dec._need)
        if ev != EV_ERROR:
            # Resizing to 0 gives a large frame's memory back.
            PyByteArray_Resize(dec._partial, 0)
    consumed[0] = i
    if ev != EV_ERROR:
        dec._state = _S_PREFIX
    return ev


cdef int _next_line(FrameDecoder dec, const unsigned char* data, Py_ssize_t n,
                    Py_ssize_t* consumed) except -1:
    """The next non-blank line of the JSON-lines framing, or as much of one as ``data`` holds."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t have, k
    cdef const unsigned char* nl
    cdef int ev
    while True:
        have = PyByteArray_GET_SIZE(dec._partial)
        nl = <const unsigned char*>memchr(data + i, 0x0A, n - i)
        if nl == NULL:
            if have + (n - i) > dec.max_frame_bytes:
                consumed[0] = n
                return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                             f"a line passed max_frame_bytes ({dec.max_frame_bytes}) without "
                             "a newline")
            if n > i:
                PyByteArray_Resize(dec._partial, have + (n - i))
                memcpy(<unsigned char*>PyByteArray_AS_STRING(dec._partial) + have, data + i,
                       n - i)
            consumed[0] = n
            return EV_NONE
        k = nl - (data + i)
        if have + k > dec.max_frame_bytes:
            consumed[0] = i + k
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         f"a line passed max_frame_bytes ({dec.max_frame_bytes}) without "
                         "a newline")
        if have == 0:
            ev = _parse_line(dec, data + i, k)
        else:
            PyByteArray_Resize(dec._partial, have + k)
            memcpy(<unsigned char*>PyByteArray_AS_STRING(dec._partial) + have, data + i, k)
            ev = _parse_line(dec, <const unsigned char*>PyByteArray_AS_STRING(dec._partial),
                             have + k)
            if ev != EV_ERROR:
                PyByteArray_Resize(dec._partial, 0)
        i += k + 1
        if ev != _SKIP:
            consumed[0] = i
            return ev


cdef int _parse_line(FrameDecoder dec, const unsigned char* p, Py_ssize_t n) except -1:
    if _blank(p, n):
        return _SKIP
    try:
        value = _loads(PyBytes_FromStringAndSize(<const char*>p, n))
    except _JSONDecodeError:
        return _fail(dec, VIOLATION_PROTOCOL_ERROR, "a line is not one JSON value")
    return _from_json(dec, value)


cdef int _parse_binary(FrameDecoder dec, const unsigned char* p, Py_ssize_t size) except -1:
    """A whole binary frame (after its prefix) at p[0:size], size >= HEADER_BYTES: checked
    against its kind's rule, then made into ``dec.frame``."""
    cdef int kind = p[0]
    cdef int flags = p[1]
    cdef unsigned long long id = _be64(p + 2)
    cdef Py_ssize_t name_len = p[10]
    cdef const unsigned char* body = p + HEADER_BYTES + name_len
    cdef Py_ssize_t body_len = size - HEADER_BYTES - name_len
    cdef _Rule rule
    cdef str name
    cdef object payload
    cdef unsigned long long last
    if kind > KIND_MAX:
        return _fail(dec, VIOLATION_PROTOCOL_ERROR, f"unknown frame kind {kind}")
    rule = _RULES[kind]
    if not rule.senders & dec._senders:
        if kind == 0:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, "unknown frame kind 0")
        return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                     f"a {KIND_NAMES[kind]} frame cannot come from a "
                     f"{_SENDER_NAMES[dec._senders]}")
    if flags & ~rule.flags:
        return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                     f"flags {flags:#04x} not allowed on a {KIND_NAMES[kind]} frame")
    if not _id_ok(rule.id_rule, id):
        return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                     f"the id of a {KIND_NAMES[kind]} frame {_id_words(rule.id_rule)}")
    if body_len < 0:
        return _fail(dec, VIOLATION_PROTOCOL_ERROR, "the name runs past the end of the frame")
    if not _name_ok(rule.name_rule, name_len):
        return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                     f"the name of a {KIND_NAMES[kind]} frame {_name_words(rule.name_rule)}")
    if name_len == 0:
        name = _EMPTY
    else:
        if _has_control(p + HEADER_BYTES, name_len):
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, "a control character in a name")
        try:
            name = PyUnicode_DecodeUTF8(<const char*>p + HEADER_BYTES, name_len, NULL)
        except UnicodeDecodeError:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, "a name is not UTF-8")
    if rule.payload == _P_DATA:
        payload = PyBytes_FromStringAndSize(<const char*>body, body_len) if body_len else _NO_BYTES
    elif rule.payload == _P_NONE:
        if body_len:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         f"a {KIND_NAMES[kind]} frame carries no payload")
        payload = None
    elif rule.payload == _P_TEXT:
        try:
            payload = PyUnicode_DecodeUTF8(<const char*>body, body_len, NULL)
        except UnicodeDecodeError:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         f"the text of a {KIND_NAMES[kind]} frame is not UTF-8")
    elif rule.payload == _P_GAP:
        if body_len != 8:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         "a gap frame's payload is its 8-byte last sequence number")
        last = _be64(body)
        if last < id:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, "a gap ends before it starts")
        payload = PyLong_FromUnsignedLongLong(last)
    else:
        try:
            payload = _loads(PyBytes_FromStringAndSize(<const char*>body, body_len))
        except _JSONDecodeError:
            payload = None
        if type(payload) is not dict:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         f"the payload of a {KIND_NAMES[kind]} frame is not a JSON object")
    dec.frame = _frame(kind, flags, id, name, payload)
    return EV_FRAME


cdef int _from_json(FrameDecoder dec, object value) except -1:
    """A parsed JSON frame (docs §3.2) checked against its kind's rule, into ``dec.frame``."""
    cdef dict d
    cdef PyObject* item
    cdef Py_ssize_t known = 1
    cdef int kind, flags = 0
    cdef unsigned long long id = 0
    cdef unsigned long long last
    cdef str name = _EMPTY
    cdef object payload = None
    cdef const char* utf8
    cdef Py_ssize_t utf8_len
    cdef _Rule rule
    if type(value) is not dict:
        return _fail(dec, VIOLATION_PROTOCOL_ERROR, "a JSON frame is an object")
    d = <dict>value
    item = PyDict_GetItem(d, _K_T)
    if item == NULL or type(<object>item) is not str:
        return _fail(dec, VIOLATION_PROTOCOL_ERROR, 'a JSON frame needs "t", a string')
    item = PyDict_GetItem(_KIND_BY_NAME, <object>item)
    if item == NULL:
        return _fail(dec, VIOLATION_PROTOCOL_ERROR, 'unknown frame kind in "t"')
    kind = <int><object>item
    rule = _RULES[kind]
    if not rule.senders & dec._senders:
        return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                     f"a {KIND_NAMES[kind]} frame cannot come from a "
                     f"{_SENDER_NAMES[dec._senders]}")
    item = PyDict_GetItem(d, _K_ID)
    if item != NULL:
        known += 1
        if type(<object>item) is not int:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, '"id" is not an integer')
        try:
            id = PyLong_AsUnsignedLongLong(<object>item)
        except OverflowError:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, '"id" is outside 0..2**64-1')
    if not _id_ok(rule.id_rule, id):
        return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                     f"the id of a {KIND_NAMES[kind]} frame {_id_words(rule.id_rule)}")
    item = PyDict_GetItem(d, _K_NAME)
    if item != NULL:
        known += 1
        if type(<object>item) is not str:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, '"name" is not a string')
        name = <str>item
        utf8 = PyUnicode_AsUTF8AndSize(name, &utf8_len)
        if utf8_len > MAX_NAME_BYTES:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, "a name is longer than 255 bytes")
        if _has_control(<const unsigned char*>utf8, utf8_len):
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, "a control character in a name")
    else:
        utf8_len = 0
    if not _name_ok(rule.name_rule, utf8_len):
        return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                     f"the name of a {KIND_NAMES[kind]} frame {_name_words(rule.name_rule)}")
    item = PyDict_GetItem(d, _K_ACK)
    if item != NULL:
        known += 1
        if not rule.flags & FLAG_ACK_REQUESTED:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         f'"ack" not allowed on a {KIND_NAMES[kind]} frame')
        if <object>item is True:
            flags = FLAG_ACK_REQUESTED
        elif <object>item is not False:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, '"ack" is not a boolean')
    item = PyDict_GetItem(d, _K_DATA)
    if item != NULL:
        known += 1
        payload = <object>item
    if rule.payload == _P_OBJECT:
        if type(payload) is not dict:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         f'the "data" of a {KIND_NAMES[kind]} frame is not a JSON object')
    elif rule.payload == _P_TEXT:
        if item == NULL:
            payload = _EMPTY
        elif type(payload) is not str:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         f'the "data" of a {KIND_NAMES[kind]} frame is not a string')
    elif rule.payload == _P_NONE:
        if payload is not None:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         f"a {KIND_NAMES[kind]} frame carries no data")
    elif rule.payload == _P_GAP:
        if type(payload) is not int:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR,
                         'the "data" of a gap frame is its last sequence number')
        try:
            last = PyLong_AsUnsignedLongLong(payload)
        except OverflowError:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, 'a gap\'s "data" is outside 0..2**64-1')
        if last < id:
            return _fail(dec, VIOLATION_PROTOCOL_ERROR, "a gap ends before it starts")
    if known != len(d):
        # docs §3.2: one verdict for both framings, like a reserved flag bit in binary.
        return _fail(dec, VIOLATION_PROTOCOL_ERROR, "an unknown key in a JSON frame")
    dec.frame = _frame(kind, flags, id, name, payload)
    return EV_FRAME


# --- encoders ----------------------------------------------------------------------------------

cdef const char* _checked_name(int kind, _Rule rule, str name, Py_ssize_t* size) except NULL:
    cdef const char* utf8 = PyUnicode_AsUTF8AndSize(name, size)
    if size[0] > MAX_NAME_BYTES:
        raise ValueError(f"a name is at most 255 UTF-8 bytes, got {size[0]}")
    if _has_control(<const unsigned char*>utf8, size[0]):
        raise ValueError(f"a name carries no control characters: {name!r}")
    if not _name_ok(rule.name_rule, size[0]):
        raise ValueError(f"the name of a {KIND_NAMES[kind]} frame {_name_words(rule.name_rule)}")
    return utf8


cdef _Rule _checked_rule(int kind, int flags, unsigned long long id) except *:
    cdef _Rule rule
    if kind < 1 or kind > KIND_MAX:
        raise ValueError(f"unknown frame kind {kind}")
    rule = _RULES[kind]
    if flags < 0 or flags & ~rule.flags:
        raise ValueError(f"flags {flags:#x} not allowed on a {KIND_NAMES[kind]} frame")
    if not _id_ok(rule.id_rule, id):
        raise ValueError(f"the id of a {KIND_NAMES[kind]} frame {_id_words(rule.id_rule)}")
    return rule


cdef unsigned long long _checked_gap(object payload, unsigned long long id) except? 0:
    cdef unsigned long long last
    if type(payload) is not int:
        raise TypeError(f"a gap's payload is its last sequence number (int), not "
                        f"{type(payload).__name__}")
    last = PyLong_AsUnsignedLongLong(payload)
    if last < id:
        raise ValueError(f"a gap cannot end ({last}) before it starts ({id})")
    return last


cdef bytes encode_frame(int kind, unsigned long long id, str name, object payload, int flags,
                        int framing):
    cdef _Rule rule = _checked_rule(kind, flags, id)
    cdef Py_ssize_t name_len
    cdef const char* name_utf8 = _checked_name(kind, rule, name, &name_len)
    if framing == FRAMING_BINARY or framing == FRAMING_WS_BINARY:
        return _encode_binary(kind, rule, id, name_utf8, name_len, payload, flags,
                              framing == FRAMING_BINARY)
    if framing == FRAMING_JSON_LINES or framing == FRAMING_WS_TEXT:
        return _encode_json(kind, rule, id, name, payload, flags, framing == FRAMING_JSON_LINES)
    raise ValueError(f"cannot encode in framing {framing}")


cdef bytes _encode_binary(int kind, _Rule rule, unsigned long long id, const char* name,
                          Py_ssize_t name_len, object payload, int flags, bint prefixed):
    cdef Py_buffer view
    cdef bint viewed = False
    cdef const char* body = NULL
    cdef Py_ssize_t body_len = 0
    cdef unsigned char gap[8]
    cdef object raw
    cdef Py_ssize_t size, at
    cdef bytes out
    cdef unsigned char* p
    if rule.payload == _P_DATA:
        if isinstance(payload, str) or payload is None:
            raise TypeError(f"a binary {KIND_NAMES[kind]} frame's payload is bytes (the codec's "
                            f"output), not {type(payload).__name__}")
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        viewed = True
        body = <const char*>view.buf
        body_len = view.len
    elif rule.payload == _P_TEXT:
        if type(payload) is not str:
            raise TypeError(f"a {KIND_NAMES[kind]} frame's payload is str, not "
                            f"{type(payload).__name__}")
        body = PyUnicode_AsUTF8AndSize(payload, &body_len)
    elif rule.payload == _P_OBJECT:
        if type(payload) is not dict:
            raise TypeError(f"a {KIND_NAMES[kind]} frame's payload is a dict, not "
                            f"{type(payload).__name__}")
        raw = _dumps(payload)
        body = PyBytes_AS_STRING(raw)
        body_len = PyBytes_GET_SIZE(raw)
    elif rule.payload == _P_GAP:
        _put64(gap, _checked_gap(payload, id))
        body = <const char*>gap
        body_len = 8
    elif payload is not None:
        raise TypeError(f"a {KIND_NAMES[kind]} frame carries no payload")
    try:
        size = HEADER_BYTES + name_len + body_len
        if size > MAX_FRAME_LIMIT:
            raise ValueError(f"a frame of {size} bytes is over the 1 GiB limit")
        at = PREFIX_BYTES if prefixed else 0
        out = PyBytes_FromStringAndSize(NULL, at + size)
        p = <unsigned char*>PyBytes_AS_STRING(out)
        if prefixed:
            _put32(p, <unsigned long long>size)
        p[at] = <unsigned char>kind
        p[at + 1] = <unsigned char>flags
        _put64(p + at + 2, id)
        p[at + 10] = <unsigned char>name_len
        memcpy(p + at + HEADER_BYTES, name, name_len)
        if body_len:
            memcpy(p + at + HEADER_BYTES + name_len, body, body_len)
        return out
    finally:
        if viewed:
            PyBuffer_Release(&view)


cdef bytes _encode_json(int kind, _Rule rule, unsigned long long id, str name, object payload,
                        int flags, bint lines):
    # docs §3.2: keys in the order t, id, name, data, ack; "id" and "name" present when the kind
    # has them, "data" when it has a payload (null included), "ack" only when true.
    cdef dict d = {_K_T: KIND_NAMES[kind]}
    cdef bytes out
    if rule.id_rule != _ID_ZERO:
        d[_K_ID] = id
    if rule.name_rule != _NAME_EMPTY:
        d[_K_NAME] = name
    if rule.payload == _P_OBJECT:
        if type(payload) is not dict:
            raise TypeError(f"a {KIND_NAMES[kind]} frame's payload is a dict, not "
                            f"{type(payload).__name__}")
        d[_K_DATA] = payload
    elif rule.payload == _P_TEXT:
        if type(payload) is not str:
            raise TypeError(f"a {KIND_NAMES[kind]} frame's payload is str, not "
                            f"{type(payload).__name__}")
        d[_K_DATA] = payload
    elif rule.payload == _P_GAP:
        _checked_gap(payload, id)
        d[_K_DATA] = payload
    elif rule.payload == _P_DATA:
        d[_K_DATA] = payload
    elif payload is not None:
        raise TypeError(f"a {KIND_NAMES[kind]} frame carries no payload")
    if flags & FLAG_ACK_REQUESTED:
        d[_K_ACK] = True
    out = _dumps(d, option=_OPT_NEWLINE) if lines else _dumps(d)
    if PyBytes_GET_SIZE(out) - lines > MAX_FRAME_LIMIT:
        raise ValueError(f"a frame of {PyBytes_GET_SIZE(out) - lines} bytes is over the 1 GiB "
                         "limit")
    return out


def encode(int kind, unsigned long long id=0, str name="", object payload=None, int flags=0,
           int framing=FRAMING_BINARY):
    """One frame in ``framing``; see frames.pyi."""
    return encode_frame(kind, id, name, payload, flags, framing)


@cython.final
cdef class PushTemplate:
    """One push encoded once for many members; see frames.pxd/.pyi."""

    def __init__(self, str name, object payload, int flags=0, int framing=FRAMING_BINARY):
        cdef _Rule rule = _checked_rule(KIND_PUSH, flags, 1)
        cdef Py_ssize_t name_len
        cdef const char* name_utf8 = _checked_name(KIND_PUSH, rule, name, &name_len)
        cdef Py_buffer view
        cdef bytes out
        cdef unsigned char* p
        cdef dict d
        self.framing = framing
        self.flags = flags
        self.name = name
        if framing == FRAMING_BINARY or framing == FRAMING_WS_BINARY:
            # body = name length, name, payload; the head is (prefix,) kind, flags, seq.
            if isinstance(payload, str) or payload is None:
                raise TypeError("a binary push's payload is bytes (the codec's output), not "
                                f"{type(payload).__name__}")
            PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
            try:
                if HEADER_BYTES + name_len + view.len > MAX_FRAME_LIMIT:
                    raise ValueError(f"a frame of {HEADER_BYTES + name_len + view.len} bytes "
                                     "is over the 1 GiB limit")
                out = PyBytes_FromStringAndSize(NULL, 1 + name_len + view.len)
                p = <unsigned char*>PyBytes_AS_STRING(out)
                p[0] = <unsigned char>name_len
                memcpy(p + 1, name_utf8, name_len)
                memcpy(p + 1 + name_len, view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
            self.body = out
            self._head_len = (PREFIX_BYTES if framing == FRAMING_BINARY else 0) + 10
        elif framing == FRAMING_JSON_LINES or framing == FRAMING_WS_TEXT:
            # encode_frame's object is {"t":"push","id":SEQ,"name":..,"data":..[,"ack":true]}:
            # the body is everything after SEQ, which is this object with "," for its "{".
            d = {_K_NAME: name, _K_DATA: payload}
            if flags & FLAG_ACK_REQUESTED:
                d[_K_ACK] = True
            out = (_dumps(d, option=_OPT_NEWLINE) if framing == FRAMING_JSON_LINES
                   else _dumps(d))
            if PyBytes_GET_SIZE(out) + PUSH_HEAD_MAX > MAX_FRAME_LIMIT:
                raise ValueError(f"a push of {PyBytes_GET_SIZE(out)} bytes is over the 1 GiB "
                                 "limit")
            self.body = b"," + out[1:]
            self._head_len = 0
        else:
            raise ValueError(f"cannot encode in framing {framing}")

    cdef Py_ssize_t write_head(self, unsigned char* dst, unsigned long long seq) noexcept:
        cdef Py_ssize_t at = 0
        if self._head_len:
            if self.framing == FRAMING_BINARY:
                _put32(dst, <unsigned long long>(10 + PyBytes_GET_SIZE(self.body)))
                at = PREFIX_BYTES
            dst[at] = KIND_PUSH
            dst[at + 1] = <unsigned char>self.flags
            _put64(dst + at + 2, seq)
            return self._head_len
        memcpy(dst, PyBytes_AS_STRING(_JSON_PUSH_HEAD), 17)
        return 17 + _put_decimal(dst + 17, seq)

    cpdef bytes frame(self, unsigned long long seq):
        cdef unsigned char head[PUSH_HEAD_MAX]
        cdef Py_ssize_t k
        cdef bytes out
        cdef unsigned char* p
        if seq == 0:
            raise ValueError("a push's sequence number is at least 1")
        k = self.write_head(head, seq)
        out = PyBytes_FromStringAndSize(NULL, k + PyBytes_GET_SIZE(self.body))
        p = <unsigned char*>PyBytes_AS_STRING(out)
        memcpy(p, head, k)
        memcpy(p + k, PyBytes_AS_STRING(self.body), PyBytes_GET_SIZE(self.body))
        return out

    def head(self, unsigned long long seq):
        """The bytes before ``body`` for sequence number ``seq``; see frames.pyi."""
        cdef unsigned char head[PUSH_HEAD_MAX]
        if seq == 0:
            raise ValueError("a push's sequence number is at least 1")
        return PyBytes_FromStringAndSize(<const char*>head, self.write_head(head, seq))

    def __repr__(self):
        return (f"<PushTemplate framing={self.framing} name={self.name!r} flags={self.flags:#x} "
                f"body={PyBytes_GET_SIZE(self.body)} bytes>")
