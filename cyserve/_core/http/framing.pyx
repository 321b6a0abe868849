# cython: language_level=3
"""Message body framing for both roles (see framing.pxd)."""
cimport cython
from cpython.bytes cimport PyBytes_GET_SIZE

from cyserve._core.http.body cimport BodyStream, first_read_fn, new_body
from cyserve._core.http.chunked cimport ChunkedDecoder, chunk_header, encode_chunk
from cyserve._core.http.head cimport FRAMING_CHUNKED, FRAMING_CLOSE, FRAMING_LENGTH
from cyserve._core.http.serialise cimport (
    BODY_CHUNKED, BODY_LENGTH, COALESCE_BODY_BYTES,
)
from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.io.outbox cimport Outbox
from cyserve._core.io.stream cimport Stream

from cyserve.errors import ProtocolError

cdef bytes _LAST_CHUNK = b"0\r\n\r\n"
cdef bytes _CRLF = b"\r\n"


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
