# cython: language_level=3
"""Message body framing for both roles (see framing.pxd)."""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport (PyUnicode_1BYTE_KIND, PyUnicode_Check, PyUnicode_DATA,
                              PyUnicode_GET_LENGTH, PyUnicode_KIND)

from cyserve._core.http.body cimport BodyStream, first_read_fn, new_body
from cyserve._core.http.chunked cimport ChunkedDecoder, chunk_header, encode_chunk
from cyserve._core.http.grammar cimport C_TCHAR, C_VALUE, CLASS, LOWER
from cyserve._core.http.head cimport FRAMING_CHUNKED, FRAMING_CLOSE, FRAMING_LENGTH
from cyserve._core.http.serialise cimport (
    BODY_CHUNKED, BODY_LENGTH, COALESCE_BODY_BYTES,
)
from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.io.outbox cimport Outbox
from cyserve._core.io.stream cimport Stream

from cyserve.errors import ProtocolError

cdef bytes _LAST_CHUNK = b"0\r\n\r\n"
cdef bytes _LAST_CHUNK_LINE = b"0\r\n"
cdef bytes _CRLF = b"\r\n"
cdef bytes _COLON_SP = b": "

# Fields that may not be trailers (RFC 9110 §6.5.1): a recipient needs them before the content, or
# they frame, route or authorise the message.  Lower-case; ``Content-*`` is refused by prefix
# (the content's type, coding, range, language, location: all describe the content before it is
# read), except Content-Digest, which RFC 9530 §2 defines for a trailer section.
cdef frozenset _NOT_TRAILERS = frozenset((
    # message framing and connection management (RFC 9112 §6-7, RFC 9110 §7.6, §7.8, §10.1.4)
    b"content-length", b"transfer-encoding", b"trailer", b"connection", b"keep-alive",
    b"proxy-connection", b"upgrade", b"te",
    # routing and request modifiers (RFC 9110 §7.2, §10.1, §13.1, §14.2)
    b"host", b"expect", b"max-forwards", b"range", b"if-match", b"if-none-match",
    b"if-modified-since", b"if-unmodified-since", b"if-range",
    # response control data (RFC 9110 §6.6.1, §10.2; RFC 9111 §5)
    b"date", b"location", b"retry-after", b"vary", b"age", b"cache-control", b"expires",
    b"pragma", b"warning",
    # authentication (RFC 9110 §11.6-11.7)
    b"authorization", b"proxy-authorization", b"www-authenticate", b"proxy-authenticate",
    # state management: a user agent stores cookies as it reads the head (RFC 6265 §5.2)
    b"set-cookie", b"cookie",
))


cdef const unsigned char* field_bytes(object text, Py_ssize_t* size, list keep) except NULL:
    """The bytes of a field name or value given as ``bytes`` or a latin-1 ``str``, in place;
    anything else through ``bytes()`` (kept alive in ``keep``)."""
    if type(text) is bytes:
        size[0] = PyBytes_GET_SIZE(text)
        return <const unsigned char*>PyBytes_AS_STRING(text)
    if PyUnicode_Check(text):
        if PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND:
            raise ValueError(f"field {text!r} is not latin-1")
        size[0] = PyUnicode_GET_LENGTH(text)
        return <const unsigned char*>PyUnicode_DATA(text)
    data = bytes(text)
    keep.append(data)
    size[0] = PyBytes_GET_SIZE(data)
    return <const unsigned char*>PyBytes_AS_STRING(data)


cdef const unsigned char* _value_bytes(object name, object value, Py_ssize_t* size,
                                       list keep) except NULL:
    """A field value's bytes as the head serialiser reads them: a latin-1 ``str`` in place,
    bytes-likes as they are, anything else as its ``str`` in latin-1."""
    if PyUnicode_Check(value):
        if PyUnicode_KIND(value) != PyUnicode_1BYTE_KIND:
            raise ValueError(f"value of trailer {name!r} is not latin-1")
        size[0] = PyUnicode_GET_LENGTH(value)
        return <const unsigned char*>PyUnicode_DATA(value)
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        data = str(value).encode("latin-1")
    keep.append(data)
    size[0] = PyBytes_GET_SIZE(data)
    return <const unsigned char*>PyBytes_AS_STRING(data)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef list _trailer_lines(object fields):
    """The field lines of a trailer section, each ``name: value\r\n``; ValueError for a field
    that is malformed or may not be a trailer (see ``BodyWriter.finish_trailers``)."""
    cdef list lines = []
    cdef list keep = []
    cdef const unsigned char* n
    cdef const unsigned char* v
    cdef Py_ssize_t nlen, vlen, i
    cdef bytes lower
    cdef char* low
    for name, value in fields:
        n = field_bytes(name, &nlen, keep)
        v = _value_bytes(name, value, &vlen, keep)
        if nlen == 0:
            raise ValueError("empty trailer name")
        # The head's grammar (RFC 9110 §5.1, §5.5): a token name; a value of field-vchar, SP,
        # HTAB and obs-text only, so CR, LF and NUL can never end the section early (injection).
        for i in range(nlen):
            if not CLASS[n[i]] & C_TCHAR:
                raise ValueError(f"trailer name {name!r} is not a token (RFC 9110 §5.1)")
        for i in range(vlen):
            if not CLASS[v[i]] & C_VALUE:
                raise ValueError(f"value of trailer {name!r} contains the control byte "
                                 f"0x{v[i]:02x} (RFC 9110 §5.5)")
        lower = PyBytes_FromStringAndSize(NULL, nlen)
        low = PyBytes_AS_STRING(lower)
        for i in range(nlen):
            low[i] = <char>LOWER[n[i]]
        if lower in _NOT_TRAILERS or (lower.startswith(b"content-") and lower != b"content-digest"):
            raise ValueError(f"{name!r} may not be sent as a trailer (RFC 9110 §6.5.1)")
        lines.append(PyBytes_FromStringAndSize(<const char*>n, nlen) + _COLON_SP
                     + PyBytes_FromStringAndSize(<const char*>v, vlen) + _CRLF)
    return lines


@cython.final
cdef class BodyReader:
    """One body being read off a connection's buffer."""

    cdef int feed(self, ReceiveBuffer buf) except -1:
        cdef BodyStream sink = self.sink
        cdef Py_ssize_t n = buf.size()
        cdef Py_ssize_t take, consumed
        cdef list out
        cdef bytes piece
        if self.framing == FRAMING_LENGTH:
            take = n if n < self.remaining else <Py_ssize_t>self.remaining
            if sink is not None:
                sink.feed(buf.take(take))
            buf.consume(take)
            self.remaining -= take
            self.received += take
            self.done = self.remaining == 0
        elif self.framing == FRAMING_CHUNKED:
            out = []
            consumed = self._decoder.feed(buf.head(), n, out)
            buf.consume(consumed)
            for piece in out:
                self.received += PyBytes_GET_SIZE(piece)
                if sink is not None:
                    sink.feed(piece)
            if self._limit >= 0 and self.received > self._limit:
                # RFC 9110 §15.5.14; a chunked body's size is known only as it arrives.
                raise ProtocolError(f"chunked body exceeds the {self._limit}-byte limit", 413)
            self.done = self._decoder.done
        else:
            # FRAMING_CLOSE (RFC 9112 §6.3 item 8): the connection's end is the body's end.
            if sink is not None:
                sink.feed(buf.take(n))
            buf.consume(n)
            self.received += n
        return 1 if self.done else 0


@cython.final
cdef class BodyWriter:
    """One body being written to a connection's outbox."""

    cdef int start(self, int framing, long long content_length, bint silent) except -1:
        self.framing = framing
        self.remaining = content_length if framing == BODY_LENGTH else -1
        self._silent = silent
        return 0

    cdef int write(self, bytes data) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        if self.framing == BODY_LENGTH:
            if n > self.remaining:
                raise ValueError(
                    f"the body passes its declared Content-Length by {n - self.remaining} bytes")
            self.remaining -= n
        if n == 0 or self._silent:
            return 0
        if self.framing == BODY_CHUNKED:
            if n <= COALESCE_BODY_BYTES:
                self._out.send(encode_chunk(data))
            else:
                self._out.send3(chunk_header(n), data, _CRLF)
        else:
            self._out.send(data)
        return 0

    cdef int finish(self) except -1:
        if self.framing == BODY_CHUNKED:
            if not self._silent and not self._out.closed:
                self._out.send(_LAST_CHUNK)
        elif self.framing == BODY_LENGTH and self.remaining > 0 and not self._silent:
            return 1
        return 0

    cdef int finish_trailers(self, object fields) except -1:
        cdef list lines = _trailer_lines(fields)   # checked whatever happens to them
        if not lines:
            return self.finish()
        if self.framing == BODY_LENGTH:
            # RFC 9112 §7.1.2: the trailer section is part of the chunked coding; a body framed by
            # Content-Length ends with its last byte and has nowhere to put one.  Raised for a
            # HEAD response too, so the same handler fails the same way for GET and HEAD.
            raise ValueError("a body framed by Content-Length cannot carry trailers "
                             "(RFC 9112 §7.1.2: only a chunked body has a trailer section)")
        if self._silent or self.framing != BODY_CHUNKED:
            # No content goes out (HEAD, 204, 304: RFC 9110 §9.3.2, §15.3.5, §15.4.5), or the
            # peer is HTTP/1.0 and the close ends the body (RFC 9112 §6.3 item 8): no trailer
            # section exists.  Trailers are metadata a recipient may discard anyway (RFC 9110
            # §6.5.1), so they are dropped rather than failing a response the client chose.
            return self.finish()
        if not self._out.closed:
            lines.insert(0, _LAST_CHUNK_LINE)
            lines.append(_CRLF)
            self._out.send(b"".join(lines))
        return 0


cdef BodyReader body_reader(int framing, long long length, long long limit,
                            Py_ssize_t max_trailer_bytes):
    cdef BodyReader r = BodyReader.__new__(BodyReader)
    r.framing = framing
    r.remaining = length if framing == FRAMING_LENGTH else 0
    r._limit = limit
    if framing == FRAMING_CHUNKED:
        r._decoder = ChunkedDecoder(max_trailer_bytes)
    return r


cdef BodyWriter body_writer(Outbox out):
    cdef BodyWriter w = BodyWriter.__new__(BodyWriter)
    w._out = out
    return w


cdef object start_body(Stream stream, int framing, long long length, long long limit,
                       Py_ssize_t max_trailer_bytes, Py_ssize_t high, Py_ssize_t low,
                       object owner, first_read_fn on_first_read):
    cdef ReceiveBuffer buf = stream.buffer
    cdef BodyReader reader
    cdef bytes whole
    if framing == FRAMING_LENGTH and buf.size() >= length:
        whole = buf.take(length)
        buf.consume(length)
        return whole
    reader = body_reader(framing, length, limit, max_trailer_bytes)
    reader.sink = new_body(stream, high, low, owner, on_first_read)
    if buf.size() and reader.feed(buf):
        # A chunked body that arrived whole: bytes too, like a Content-Length one.
        whole = reader.sink.take_all()
        reader.sink.detach()
        return whole
    return reader
