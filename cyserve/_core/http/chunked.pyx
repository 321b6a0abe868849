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

# The byte classes and the error codes are the grammar's, shared with the head parser: tchar,
# field value (VCHAR / SP / HTAB / obs-text, which is also quoted-pair's escaped byte) and HEXDIG
# are one table lookup each, and a failure raises through the one error table.
from cyserve._core.http.grammar cimport (
    C_HEXDIG, C_TCHAR, C_VALUE, CLASS, CR, LF, hex_value, is_ows, raise_error,
)
from cyserve._core.http.grammar cimport (
    E_CHUNK_BARE_LF, E_CHUNK_BWS_BEFORE_CRLF, E_CHUNK_DATA_CRLF, E_CHUNK_EXT_CHAR,
    E_CHUNK_EXT_NAME_EMPTY, E_CHUNK_EXT_QUOTED_CHAR, E_CHUNK_EXT_TOKEN_QUOTE,
    E_CHUNK_EXT_VALUE_EMPTY, E_CHUNK_LINE_TOO_LONG, E_CHUNK_SIZE_CHAR, E_CHUNK_SIZE_LINE_CRLF,
    E_CHUNK_SIZE_TOO_LARGE, E_OK, E_TRAILER_CRLF, E_TRAILER_FOLD, E_TRAILER_NAME,
    E_TRAILER_TOO_LARGE, E_TRAILER_VALUE, E_TRAILER_WS_COLON,
)

LAST_CHUNK = b"0\r\n\r\n"

cdef enum:
    _MAX_SIZE_LINE_BYTES = 4096     # quoted by grammar's E_CHUNK_LINE_TOO_LONG message
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
        self._error = E_OK
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
                raise_error(self._error)
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
        cdef int err = E_OK
        cdef unsigned char c, cls
        if state >= _S_TRAILER_START:
            self._trailer_from = i
        while i < length:
            c = data[i]
            cls = CLASS[c]
            if state <= _S_EXT_BWS and c != CR:
                # §7.1.1: bound the size line (leading zeros and extensions) against slow floods.
                line += 1
                if line > _MAX_SIZE_LINE_BYTES:
                    err = E_CHUNK_LINE_TOO_LONG
                    break
            elif _S_TRAILER_START <= state <= _S_TRAILER_LF and not (state == _S_TRAILER_START and c == CR):
                # §7.1.2 trailer field lines count against max_trailer_bytes (431), CRLF included.
                trailer += 1
                if trailer > max_trailer:
                    err = E_TRAILER_TOO_LARGE
                    break

            if state == _S_SIZE_START:
                # §7.1: chunk-size = 1*HEXDIG; a sign, "0x", whitespace or an empty size are errors.
                if not cls & C_HEXDIG:
                    err = E_CHUNK_BARE_LF if c == LF else E_CHUNK_SIZE_CHAR
                    break
                size = hex_value(c)
                state = _S_SIZE
            elif state == _S_SIZE:
                if cls & C_HEXDIG:
                    # §7.1: check before the shift so the value never wraps.
                    if size >> _SIZE_SHIFT_LIMIT:
                        err = E_CHUNK_SIZE_TOO_LARGE
                        break
                    size = (size << 4) | hex_value(c)
                elif c == CR:
                    state = _S_SIZE_LF
                elif c == 59:   # ";"
                    state = _S_EXT_NAME_START
                elif is_ows(c):
                    # §7.1.1: BWS before ";" (RFC 9110 §5.6.3: parse it and remove it).
                    state = _S_SIZE_BWS
                else:
                    err = E_CHUNK_BARE_LF if c == LF else E_CHUNK_SIZE_CHAR
                    break
            elif state == _S_SIZE_BWS or state == _S_EXT_BWS:
                # §7.1.1: BWS after a size or a value is only allowed before another ";".
                if c == 59:
                    state = _S_EXT_NAME_START
                elif not is_ows(c):
                    err = E_CHUNK_BWS_BEFORE_CRLF if c == CR else E_CHUNK_EXT_CHAR
                    break
            elif state == _S_EXT_NAME_START:
                if cls & C_TCHAR:
                    state = _S_EXT_NAME
                elif not is_ows(c):
                    # §7.1.1: chunk-ext-name = token, so ";;", ";=" and a trailing ";" are errors.
                    if c == 59 or c == 61 or c == CR:
                        err = E_CHUNK_EXT_NAME_EMPTY
                    else:
                        err = E_CHUNK_BARE_LF if c == LF else E_CHUNK_EXT_CHAR
                    break
            elif state == _S_EXT_NAME:
                if cls & C_TCHAR:
                    pass
                elif c == CR:
                    state = _S_SIZE_LF
                elif c == 59:
                    state = _S_EXT_NAME_START
                elif c == 61:   # "="
                    state = _S_EXT_VALUE_START
                elif is_ows(c):
                    state = _S_EXT_NAME_BWS
                else:
                    err = E_CHUNK_BARE_LF if c == LF else E_CHUNK_EXT_CHAR
                    break
            elif state == _S_EXT_NAME_BWS:
                if c == 61:
                    state = _S_EXT_VALUE_START
                elif c == 59:
                    state = _S_EXT_NAME_START
                elif not is_ows(c):
                    err = E_CHUNK_BWS_BEFORE_CRLF if c == CR else E_CHUNK_EXT_CHAR
                    break
            elif state == _S_EXT_VALUE_START:
                if cls & C_TCHAR:
                    state = _S_EXT_TOKEN
                elif c == 34:   # DQUOTE
                    state = _S_EXT_QUOTED
                elif not is_ows(c):
                    # §7.1.1: chunk-ext-val = token / quoted-string, never empty.
                    if c == 59 or c == CR:
                        err = E_CHUNK_EXT_VALUE_EMPTY
                    else:
                        err = E_CHUNK_BARE_LF if c == LF else E_CHUNK_EXT_CHAR
                    break
            elif state == _S_EXT_TOKEN or state == _S_EXT_VALUE_END:
                if state == _S_EXT_TOKEN and cls & C_TCHAR:
                    pass
                elif state == _S_EXT_TOKEN and c == 34:
                    # §7.1.1: a value is a token or a quoted-string, never a mix of both.
                    err = E_CHUNK_EXT_TOKEN_QUOTE
                    break
                elif c == CR:
                    state = _S_SIZE_LF
                elif c == 59:
                    state = _S_EXT_NAME_START
                elif is_ows(c):
                    state = _S_EXT_BWS
                else:
                    err = E_CHUNK_BARE_LF if c == LF else E_CHUNK_EXT_CHAR
                    break
            elif state == _S_EXT_QUOTED:
                # RFC 9110 §5.6.4: qdtext or a quoted-pair; CTLs (but HTAB) and DEL are errors.
                if c == 34:
                    state = _S_EXT_VALUE_END
                elif c == 92:   # backslash
                    state = _S_EXT_QUOTED_PAIR
                elif not cls & C_VALUE:
                    # qdtext is C_VALUE but DQUOTE and backslash, both taken above.
                    err = E_CHUNK_EXT_QUOTED_CHAR
                    break
            elif state == _S_EXT_QUOTED_PAIR:
                if not cls & C_VALUE:
                    err = E_CHUNK_EXT_QUOTED_CHAR
                    break
                state = _S_EXT_QUOTED
            elif state == _S_SIZE_LF:
                # §7.1: the size line ends with CRLF; a CR alone is an error.
                if c != LF:
                    err = E_CHUNK_SIZE_LINE_CRLF
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
                if c != CR:
                    err = E_CHUNK_DATA_CRLF
                    break
                state = _S_DATA_LF
            elif state == _S_DATA_LF:
                if c != LF:
                    err = E_CHUNK_DATA_CRLF
                    break
                state = _S_SIZE_START
                size = 0
                line = 0
            elif state == _S_TRAILER_START:
                if c == CR:
                    state = _S_END_LF
                elif cls & C_TCHAR:
                    state = _S_TRAILER_NAME
                elif is_ows(c):
                    # §5.2: obs-fold is rejected (a server MAY; we always do), as is whitespace
                    # before the first field line (§2.2).
                    err = E_TRAILER_FOLD
                    break
                else:
                    err = E_CHUNK_BARE_LF if c == LF else E_TRAILER_NAME
                    break
            elif state == _S_TRAILER_NAME:
                if c == 58:     # ":"
                    state = _S_TRAILER_VALUE
                elif not cls & C_TCHAR:
                    # §5.1: whitespace between field name and colon MUST be rejected with 400.
                    err = E_TRAILER_WS_COLON if is_ows(c) else E_TRAILER_NAME
                    break
            elif state == _S_TRAILER_VALUE:
                if c == CR:
                    state = _S_TRAILER_LF
                elif not cls & C_VALUE:
                    # RFC 9110 §5.5: CR, LF, NUL and other CTLs (but HTAB) are invalid in a value.
                    err = E_CHUNK_BARE_LF if c == LF else E_TRAILER_VALUE
                    break
            elif state == _S_TRAILER_LF:
                if c != LF:
                    err = E_TRAILER_CRLF
                    break
                state = _S_TRAILER_START
            elif state == _S_END_LF:
                # §7.1.2: the trailer section ends with an empty line (CRLF).
                if c != LF:
                    err = E_TRAILER_CRLF
                    break
                state = _S_DONE
                i += 1
                break
            i += 1
        if err != E_OK:
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
