# cython: language_level=3
"""Chunked transfer coding (RFC 9112 §7.1): the incremental strict decoder and the encoder.

Decisions (each one is also a documented, tested difference where a reference parser disagrees):

- chunk-size is ``1*HEXDIG`` (§7.1): no sign, no ``0x``, no whitespace before it.  Leading zeros
  are allowed and skipped; the value must stay below ``2**62`` (``MAX_CHUNK_SIZE``), checked before
  each shift so the C integer never overflows (§7.1: "anticipate potentially large hexadecimal
  numerals and prevent parsing errors due to integer conversion overflows").
- chunk-ext follows the §7.1.1 grammar exactly: ``*( BWS ";" BWS name [ BWS "=" BWS value ] )``
  with a token name and a token or quoted-string value.  BWS is accepted only where that grammar
  puts it (RFC 9110 §5.6.3: a recipient MUST parse and remove it), so whitespace between the size
  or an extension and the CRLF is rejected.  Extensions are validated, then ignored (§7.1.1).
- A size line (size and extensions, before its CR) is bounded by ``MAX_SIZE_LINE_BYTES`` (§7.1.1:
  "a server ought to limit the total length of chunk extensions ... and generate an appropriate
  4xx").
- Lines end with CRLF only (§7.1 grammar): a bare LF or a CR without LF is a 400, and so is any
  byte other than CRLF after a chunk's data.
- The trailer section (§7.1.2) is validated like a header section (§5): token name, no whitespace
  before the colon (§5.1), no CTL but HTAB in a value (RFC 9110 §5.5), no obs-fold (§5.2).  Its
  field lines are bounded by ``max_trailer_bytes`` (431).  Trailer fields are exposed, never
  interpreted: a caller must not merge them into the header section (RFC 9110 §6.5.1).
"""
cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from cyserve.errors import ProtocolError

cdef object _ProtocolError = ProtocolError

LAST_CHUNK = b"0\r\n\r\n"

cdef enum:
    _MAX_SIZE_LINE_BYTES = 4096
    _SIZE_SHIFT_LIMIT = 58      # a size >= 2**58 cannot take one more hex digit below 2**62

MAX_SIZE_LINE_BYTES = _MAX_SIZE_LINE_BYTES
MAX_CHUNK_SIZE = 2**62 - 1

# Decoder states.  The size-line states come first and the trailer states last, so range tests
# (``state <= _S_EXT_BWS``, ``state >= _S_TRAILER_START``) classify a state in one comparison.
# Invariants: ``_remaining`` holds the size read so far while in a size-line state and the data
# bytes still due in _S_DATA; ``_line_bytes`` counts the current size line's bytes before its CR;
# ``_trailer_bytes`` counts trailer field-line bytes, CRLFs included, the final empty line excluded.
cdef enum:
    _S_SIZE_START = 0       # first HEXDIG of a chunk-size expected
    _S_SIZE = 1             # inside chunk-size
    _S_SIZE_BWS = 2         # BWS after chunk-size: only ";" may follow
    _S_EXT_NAME_START = 3   # after ";": BWS, then a chunk-ext-name
    _S_EXT_NAME = 4         # inside a chunk-ext-name
    _S_EXT_NAME_BWS = 5     # BWS after a name: "=" or ";" must follow
    _S_EXT_VALUE_START = 6  # after "=": BWS, then a token or a quoted-string
    _S_EXT_TOKEN = 7        # inside a token value
    _S_EXT_QUOTED = 8       # inside a quoted-string value
    _S_EXT_QUOTED_PAIR = 9  # after a backslash in a quoted-string
    _S_EXT_VALUE_END = 10   # just after a quoted-string's closing DQUOTE
    _S_EXT_BWS = 11         # BWS after a value: only ";" may follow
    _S_SIZE_LF = 12         # CR ending the size line seen, LF expected
    _S_DATA = 13            # chunk-data: ``_remaining`` bytes still due
    _S_DATA_CR = 14         # chunk-data read, CR expected
    _S_DATA_LF = 15         # CR after chunk-data seen, LF expected
    _S_TRAILER_START = 16   # start of a trailer field line, or of the final CRLF
    _S_TRAILER_NAME = 17    # inside a trailer field name
    _S_TRAILER_VALUE = 18   # after the colon: OWS and the field value
    _S_TRAILER_LF = 19      # CR ending a field line seen, LF expected
    _S_END_LF = 20          # CR of the final empty line seen, LF expected
    _S_DONE = 21            # body complete; feeding again is a programmer error
    _S_FAILED = 22          # a ProtocolError was raised; feeding again is a programmer error

# Why decoding failed; the index into _MESSAGES.
cdef enum:
    _E_NONE = 0
    _E_SIZE_CHAR = 1
    _E_SIZE_TOO_LARGE = 2
    _E_LINE_TOO_LONG = 3
    _E_BWS_BEFORE_CRLF = 4
    _E_EXT_NAME_EMPTY = 5
    _E_EXT_VALUE_EMPTY = 6
    _E_EXT_CHAR = 7
    _E_EXT_QUOTED_CHAR = 8
    _E_BARE_LF = 9
    _E_SIZE_LINE_CRLF = 10
    _E_DATA_CRLF = 11
    _E_TRAILER_NAME = 12
    _E_TRAILER_WS_COLON = 13
    _E_TRAILER_FOLD = 14
    _E_TRAILER_VALUE = 15
    _E_TRAILER_CRLF = 16
    _E_TRAILER_TOO_LARGE = 17
    _E_EXT_TOKEN_QUOTE = 18

cdef tuple _MESSAGES = (
    "",
    "invalid character in chunk size (RFC 9112 §7.1: chunk-size = 1*HEXDIG)",
    "chunk size too large (above 2**62 - 1)",
    "chunk size line too long (over 4096 bytes before its CRLF, RFC 9112 §7.1.1)",
    "whitespace before CRLF in chunk size line (RFC 9112 §7.1.1 allows BWS only around ';' and '=')",
    "empty chunk extension name (RFC 9112 §7.1.1: chunk-ext-name = token)",
    "empty chunk extension value (RFC 9112 §7.1.1: chunk-ext-val = token / quoted-string)",
    "invalid character in chunk extension (RFC 9112 §7.1.1)",
    "invalid character in chunk extension quoted-string (RFC 9110 §5.6.4)",
    "bare LF in chunked body (RFC 9112 §7.1: lines end with CRLF)",
    "chunk size line not ended by CRLF (RFC 9112 §7.1)",
    "chunk data not followed by CRLF (RFC 9112 §7.1)",
    "invalid character in trailer field name (RFC 9110 §5.1: field-name = token)",
    "whitespace before colon in trailer field (RFC 9112 §5.1)",
    "obs-fold or leading whitespace in trailer section (RFC 9112 §5.2)",
    "invalid character in trailer field value (RFC 9110 §5.5)",
    "trailer field line not ended by CRLF (RFC 9112 §7.1.2)",
    "trailer section too large",
    "DQUOTE inside a token chunk extension value (RFC 9112 §7.1.1: token / quoted-string)",
)

# Byte classes, filled once at import.
cdef enum:
    _C_TCHAR = 1        # token character (RFC 9110 §5.6.2)
    _C_WS = 2           # SP or HTAB
    _C_QDTEXT = 4       # HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (RFC 9110 §5.6.4)
    _C_ESCAPABLE = 8    # after a backslash: HTAB / SP / VCHAR / obs-text (RFC 9110 §5.6.4)
    _C_FIELD = 16       # in a field value: HTAB / SP / VCHAR / obs-text (RFC 9110 §5.5)

cdef unsigned char _CLASS[256]
cdef signed char _HEXVAL[256]


cdef void _init_tables() noexcept:
    cdef int c
    cdef const char* tchar_punct = b"!#$%&'*+-.^_`|~"
    for c in range(256):
        _CLASS[c] = 0
        _HEXVAL[c] = -1
    for c in range(256):
        if c == 9 or 0x20 <= c <= 0x7e or c >= 0x80:
            _CLASS[c] |= _C_ESCAPABLE | _C_FIELD
            if c != 0x22 and c != 0x5c:
                _CLASS[c] |= _C_QDTEXT
        if c == 9 or c == 0x20:
            _CLASS[c] |= _C_WS
        if 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5a or 0x61 <= c <= 0x7a:
            _CLASS[c] |= _C_TCHAR
        if 0x30 <= c <= 0x39:
            _HEXVAL[c] = c - 0x30
        elif 0x41 <= c <= 0x46:
            _HEXVAL[c] = c - 0x41 + 10
        elif 0x61 <= c <= 0x66:
            _HEXVAL[c] = c - 0x61 + 10
    while tchar_punct[0]:
        _CLASS[<unsigned char>tchar_punct[0]] |= _C_TCHAR
        tchar_punct += 1


_init_tables()


@cython.final
@cython.freelist(16)
cdef class ChunkedDecoder:
    """Incremental strict decoder of one chunked body; see chunked.pxd and chunked.pyi."""

    def __cinit__(self, Py_ssize_t max_trailer_bytes=8192):
        if max_trailer_bytes < 0:
            raise ValueError(f"max_trailer_bytes must be >= 0, got {max_trailer_bytes}")
        self.max_trailer_bytes = max_trailer_bytes
        self._state = _S_SIZE_START
        self._remaining = 0
        self._line_bytes = 0
        self._trailer_bytes = 0
        self._trailer_from = -1
        self._error = _E_NONE
        self._trailer_raw = None
        self.done = False
        self.trailers = None

    cdef Py_ssize_t feed(self, const unsigned char* data, Py_ssize_t length, list out) except -1:
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t n
        if self._state >= _S_DONE:
            raise RuntimeError(
                "ChunkedDecoder fed after the body ended" if self._state == _S_DONE
                else "ChunkedDecoder fed after a ProtocolError")
        if out is None:
            raise TypeError("out must be a list")
        while i < length:
            if self._state == _S_DATA:
                # chunk-data (§7.1): one slice per contiguous run, never a byte-by-byte copy.
                n = length - i
                if <unsigned long long>n > self._remaining:
                    n = <Py_ssize_t>self._remaining
                out.append(PyBytes_FromStringAndSize(<const char*>data + i, n))
                i += n
                self._remaining -= <unsigned long long>n
                if self._remaining == 0:
                    self._state = _S_DATA_CR
                continue
            self._trailer_from = -1
            i = self._scan(data, i, length)
            if self._state == _S_FAILED:
                raise _ProtocolError(_MESSAGES[self._error],
                                     431 if self._error == _E_TRAILER_TOO_LARGE else 400)
            if self._trailer_from >= 0 and self._trailer_bytes > 0 and i > self._trailer_from:
                if self._trailer_raw is None:
                    self._trailer_raw = bytearray()
                self._trailer_raw += data[self._trailer_from:i]
            if self._state == _S_DONE:
                self._finish()
                return i
        return length

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef Py_ssize_t _scan(self, const unsigned char* data, Py_ssize_t i,
                          Py_ssize_t length) noexcept:
        """Run the framing states over data[i:length] (0 <= i <= length, so every index is in
        bounds).  Returns where it stopped: at the first data byte after entering _S_DATA, just
        past the final LF on _S_DONE, at the offending byte on _S_FAILED (with ``_error`` set), or
        at ``length``.  Pure C: no Python object is touched."""
        cdef int state = self._state
        cdef unsigned long long size = self._remaining
        cdef Py_ssize_t line = self._line_bytes
        cdef Py_ssize_t trailer = self._trailer_bytes
        cdef Py_ssize_t max_trailer = self.max_trailer_bytes
        cdef int err = _E_NONE
        cdef unsigned char c, cls
        cdef signed char h
        if state >= _S_TRAILER_START:
            self._trailer_from = i
        while i < length:
            c = data[i]
            cls = _CLASS[c]
            if state <= _S_EXT_BWS and c != 13:
                # §7.1.1: bound the size line (leading zeros and extensions) against slow floods.
                line += 1
                if line > _MAX_SIZE_LINE_BYTES:
                    err = _E_LINE_TOO_LONG
                    break
            elif _S_TRAILER_START <= state <= _S_TRAILER_LF and not (state == _S_TRAILER_START and c == 13):
                # §7.1.2 trailer field lines count against max_trailer_bytes (431), CRLF included.
                trailer += 1
                if trailer > max_trailer:
                    err = _E_TRAILER_TOO_LARGE
                    break

            if state == _S_SIZE_START:
                # §7.1: chunk-size = 1*HEXDIG; a sign, "0x", whitespace or an empty size are errors.
                h = _HEXVAL[c]
                if h < 0:
                    err = _E_BARE_LF if c == 10 else _E_SIZE_CHAR
                    break
                size = <unsigned long long>h
                state = _S_SIZE
            elif state == _S_SIZE:
                h = _HEXVAL[c]
                if h >= 0:
                    # §7.1: check before the shift so the value never wraps.
                    if size >> _SIZE_SHIFT_LIMIT:
                        err = _E_SIZE_TOO_LARGE
                        break
                    size = (size << 4) | <unsigned long long>h
                elif c == 13:
                    state = _S_SIZE_LF
                elif c == 59:   # ";"
                    state = _S_EXT_NAME_START
                elif cls & _C_WS:
                    # §7.1.1: BWS before ";" (RFC 9110 §5.6.3: parse it and remove it).
                    state = _S_SIZE_BWS
                else:
                    err = _E_BARE_LF if c == 10 else _E_SIZE_CHAR
                    break
            elif state == _S_SIZE_BWS or state == _S_EXT_BWS:
                # §7.1.1: BWS after a size or a value is only allowed before another ";".
                if c == 59:
                    state = _S_EXT_NAME_START
                elif not cls & _C_WS:
                    err = _E_BWS_BEFORE_CRLF if c == 13 else _E_EXT_CHAR
                    break
            elif state == _S_EXT_NAME_START:
                if cls & _C_TCHAR:
                    state = _S_EXT_NAME
                elif not cls & _C_WS:
                    # §7.1.1: chunk-ext-name = token, so ";;", ";=" and a trailing ";" are errors.
                    if c == 59 or c == 61 or c == 13:
                        err = _E_EXT_NAME_EMPTY
                    else:
                        err = _E_BARE_LF if c == 10 else _E_EXT_CHAR
                    break
            elif state == _S_EXT_NAME:
                if cls & _C_TCHAR:
                    pass
                elif c == 13:
                    state = _S_SIZE_LF
                elif c == 59:
                    state = _S_EXT_NAME_START
                elif c == 61:   # "="
                    state = _S_EXT_VALUE_START
                elif cls & _C_WS:
                    state = _S_EXT_NAME_BWS
                else:
                    err = _E_BARE_LF if c == 10 else _E_EXT_CHAR
                    break
            elif state == _S_EXT_NAME_BWS:
                if c == 61:
                    state = _S_EXT_VALUE_START
                elif c == 59:
                    state = _S_EXT_NAME_START
                elif not cls & _C_WS:
                    err = _E_BWS_BEFORE_CRLF if c == 13 else _E_EXT_CHAR
                    break
            elif state == _S_EXT_VALUE_START:
                if cls & _C_TCHAR:
                    state = _S_EXT_TOKEN
                elif c == 34:   # DQUOTE
                    state = _S_EXT_QUOTED
                elif not cls & _C_WS:
                    # §7.1.1: chunk-ext-val = token / quoted-string, never empty.
                    if c == 59 or c == 13:
                        err = _E_EXT_VALUE_EMPTY
                    else:
                        err = _E_BARE_LF if c == 10 else _E_EXT_CHAR
                    break
            elif state == _S_EXT_TOKEN or state == _S_EXT_VALUE_END:
                if state == _S_EXT_TOKEN and cls & _C_TCHAR:
                    pass
                elif state == _S_EXT_TOKEN and c == 34:
                    # §7.1.1: a value is a token or a quoted-string, never a mix of both.
                    err = _E_EXT_TOKEN_QUOTE
                    break
                elif c == 13:
                    state = _S_SIZE_LF
                elif c == 59:
                    state = _S_EXT_NAME_START
                elif cls & _C_WS:
                    state = _S_EXT_BWS
                else:
                    err = _E_BARE_LF if c == 10 else _E_EXT_CHAR
                    break
            elif state == _S_EXT_QUOTED:
                # RFC 9110 §5.6.4: qdtext or a quoted-pair; CTLs (but HTAB) and DEL are errors.
                if c == 34:
                    state = _S_EXT_VALUE_END
                elif c == 92:   # backslash
                    state = _S_EXT_QUOTED_PAIR
                elif not cls & _C_QDTEXT:
                    err = _E_EXT_QUOTED_CHAR
                    break
            elif state == _S_EXT_QUOTED_PAIR:
                if not cls & _C_ESCAPABLE:
                    err = _E_EXT_QUOTED_CHAR
                    break
                state = _S_EXT_QUOTED
            elif state == _S_SIZE_LF:
                # §7.1: the size line ends with CRLF; a CR alone is an error.
                if c != 10:
                    err = _E_SIZE_LINE_CRLF
                    break
                line = 0
                i += 1
                if size == 0:
                    # §7.1: last-chunk = 1*("0") [ chunk-ext ] CRLF; the trailer section follows.
                    state = _S_TRAILER_START
                    self._trailer_from = i
                    continue
                state = _S_DATA
                break
            elif state == _S_DATA_CR:
                # §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; nothing else fits.
                if c != 13:
                    err = _E_DATA_CRLF
                    break
                state = _S_DATA_LF
            elif state == _S_DATA_LF:
                if c != 10:
                    err = _E_DATA_CRLF
                    break
                state = _S_SIZE_START
                size = 0
                line = 0
            elif state == _S_TRAILER_START:
                if c == 13:
                    state = _S_END_LF
                elif cls & _C_TCHAR:
                    state = _S_TRAILER_NAME
                elif cls & _C_WS:
                    # §5.2: obs-fold is rejected (a server MAY; we always do), as is whitespace
                    # before the first field line (§2.2).
                    err = _E_TRAILER_FOLD
                    break
                else:
                    err = _E_BARE_LF if c == 10 else _E_TRAILER_NAME
                    break
            elif state == _S_TRAILER_NAME:
                if c == 58:     # ":"
                    state = _S_TRAILER_VALUE
                elif not cls & _C_TCHAR:
                    # §5.1: whitespace between field name and colon MUST be rejected with 400.
                    err = _E_TRAILER_WS_COLON if cls & _C_WS else _E_TRAILER_NAME
                    break
            elif state == _S_TRAILER_VALUE:
                if c == 13:
                    state = _S_TRAILER_LF
                elif not cls & _C_FIELD:
                    # RFC 9110 §5.5: CR, LF, NUL and other CTLs (but HTAB) are invalid in a value.
                    err = _E_BARE_LF if c == 10 else _E_TRAILER_VALUE
                    break
            elif state == _S_TRAILER_LF:
                if c != 10:
                    err = _E_TRAILER_CRLF
                    break
                state = _S_TRAILER_START
            elif state == _S_END_LF:
                # §7.1.2: the trailer section ends with an empty line (CRLF).
                if c != 10:
                    err = _E_TRAILER_CRLF
                    break
                state = _S_DONE
                i += 1
                break
            i += 1
        if err != _E_NONE:
            state = _S_FAILED
            self._error = err
        self._state = state
        self._remaining = size
        self._line_bytes = line
        self._trailer_bytes = trailer
        return i

    cdef int _finish(self) except -1:
        """Parse the validated trailer field lines once the body is done (§7.1.2)."""
        cdef list trailers = []
        cdef bytes line, name, value
        if self._trailer_raw is not None:
            for line in bytes(self._trailer_raw).split(b"\r\n"):
                if line:
                    name, _, value = line.partition(b":")
                    # §5: OWS around the value is not part of it; names are case-insensitive.
                    trailers.append((name.lower(), value.strip(b" \t")))
            self._trailer_raw = None
        self.trailers = trailers
        self.done = True
        return 0

    def decode(self, data):
        """Decode ``data`` (any contiguous bytes-like object): ``(pieces, consumed)``."""
        cdef Py_buffer view
        cdef list out = []
        cdef Py_ssize_t consumed
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            consumed = self.feed(<const unsigned char*>view.buf, view.len, out)
        finally:
            PyBuffer_Release(&view)
        return out, consumed

    def __repr__(self):
        return f"<ChunkedDecoder state={self._state} done={self.done}>"


cdef inline Py_ssize_t _hex_length(unsigned long long n) noexcept:
    cdef Py_ssize_t digits = 1
    n >>= 4
    while n:
        digits += 1
        n >>= 4
    return digits


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline void _write_hex(char* out, unsigned long long n, Py_ssize_t digits) noexcept:
    """Lower-case hex of n, no leading zeros, into out[0:digits] (digits == _hex_length(n))."""
    cdef const char* alphabet = b"0123456789abcdef"
    while digits > 0:
        digits -= 1
        out[digits] = alphabet[n & 15]
        n >>= 4


cpdef bytes chunk_header(Py_ssize_t n):
    """``b"%x\\r\\n" % n`` built in C, for a chunk of n > 0 bytes (§7.1)."""
    cdef Py_ssize_t digits
    cdef bytes result
    cdef char* buf
    if n <= 0:
        # A zero size is the last-chunk (LAST_CHUNK), never a data chunk's header.
        raise ValueError(f"chunk_header needs n > 0, got {n}")
    digits = _hex_length(<unsigned long long>n)
    result = PyBytes_FromStringAndSize(NULL, digits + 2)
    buf = PyBytes_AS_STRING(result)
    _write_hex(buf, <unsigned long long>n, digits)
    buf[digits] = 13
    buf[digits + 1] = 10
    return result


cpdef bytes encode_chunk(bytes data):
    """One chunk: hex size CRLF data CRLF; ``b""`` for empty data (a zero chunk ends the body)."""
    cdef Py_ssize_t n, digits
    cdef bytes result
    cdef char* buf
    if data is None:
        raise TypeError("encode_chunk needs bytes, got None")
    n = PyBytes_GET_SIZE(data)
    if n == 0:
        return b""
    digits = _hex_length(<unsigned long long>n)
    result = PyBytes_FromStringAndSize(NULL, digits + n + 4)
    buf = PyBytes_AS_STRING(result)
    _write_hex(buf, <unsigned long long>n, digits)
    buf[digits] = 13
    buf[digits + 1] = 10
    memcpy(buf + digits + 2, PyBytes_AS_STRING(data), n)
    buf[digits + 2 + n] = 13
    buf[digits + 3 + n] = 10
    return result
