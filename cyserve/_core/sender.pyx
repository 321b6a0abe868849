# cython: language_level=3
"""The writing half of a server connection: responses, streamed bodies, coalescing, drain."""
cimport cython
from cpython.bytes cimport PyBytes_GET_SIZE

from cyserve._core.http.body cimport BodyOwner
from cyserve._core.http.chunked cimport chunk_header, encode_chunk
from cyserve._core.http.serialise cimport (
    BODY_CHUNKED, BODY_CLOSE, BODY_LENGTH, BODY_NONE, COALESCE_BODY_BYTES, CONN_CLOSE,
    CONN_KEEP_ALIVE, CONN_NONE, HeadWriter, body_framing,
)

from cyserve.errors import Disconnected

# Coalesced output is flushed to the transport past this size, so the transport's own water
# marks (and so drain()) still see a producer that never suspends.
cdef enum:
    FLUSH_BYTES = 65536

cdef bytes _LAST_CHUNK = b"0\r\n\r\n"
cdef bytes _CRLF = b"\r\n"


@cython.final
cdef class Ready:
    """An awaitable that is already done: ``drain()`` when writing is not paused (no future)."""

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration


cdef Ready _READY = Ready()


cdef class Sender(BodyOwner):
    """Response API of a connection (``respond``, ``start_stream``/``write``/``end_stream``,
    ``drain``); the loop's ``pause_writing``/``resume_writing`` land here."""

    def __cinit__(self, *args, **kwargs):
        self._keep_alive = True
        self._resp_state = R_NONE
        self._out = []

    # ---------------------------------------------------------------- flow control
    def pause_writing(self):
        self._write_paused = True

    def resume_writing(self):
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    cdef int _writes_lost(self, object exc) except -1:
        self._closing = True
        self._out = []
        self._out_bytes = 0
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_exception(exc)
        return 0

    # ---------------------------------------------------------------- output
    cdef int _send(self, bytes data) except -1:
        """Write now, or, inside a read pass, queue for that pass's single write."""
        if self._processing:
            self._out.append(data)
            self._out_bytes += PyBytes_GET_SIZE(data)
            if self._out_bytes >= FLUSH_BYTES:
                self._flush()
        else:
            self.transport.write(data)
        return 0

    cdef int _flush(self) except -1:
        cdef list out = self._out
        self._out = []
        self._out_bytes = 0
        if len(out) == 1:
            self.transport.write(out[0])
        elif out:
            self.transport.write(b"".join(out))
        return 0

    cdef int _check_writable(self) except -1:
        if self._closing:
            raise Disconnected("the connection is closed")
        return 0

    cdef int _conn_mode(self) except -1:
        if not self._keep_alive:
            return CONN_CLOSE
        if self._http10:
            return CONN_KEEP_ALIVE
        return CONN_NONE

    cdef int _close(self) except -1:
        if not self._closing:
            if self._out_bytes:
                self._flush()
            self._closing = True
            if self.transport is not None:
                self.transport.close()
        return 0

    # ---------------------------------------------------------------- response API (for the App)
    def respond(self, int status, fields, body, content_type=None):
        """Send a whole response: head and body in one write when the body is small.

        ``fields``: an iterable of ``(name, value)`` pairs (str or bytes) or None; Content-Length,
        Transfer-Encoding and Connection are decided here.  ``body``: bytes-like.
        """
        cdef Py_ssize_t blen
        cdef int framing, conn
        cdef bint silent
        cdef bytes head
        if self._resp_state != R_NONE:
            raise RuntimeError("a response was already started for this request")
        self._check_writable()
        if type(body) is not bytes:
            body = bytes(body)
        blen = PyBytes_GET_SIZE(body)
        framing = body_framing(status, True, self._http10)
        conn = self._conn_mode()
        silent = self._head_request or framing == BODY_NONE
        head = self._writer.head(status, fields, content_type, framing,
                                 blen if framing == BODY_LENGTH else -1, conn,
                                 None if silent else body)
        if self._writer.user_close:
            self._keep_alive = False
        self._resp_state = R_DONE
        self._send(head)
        if not silent and blen > COALESCE_BODY_BYTES:
            self._send(body)

    def start_stream(self, int status, fields=None, content_type=None, long long content_length=-1):
        """Send the head of a streamed response; the body follows through ``write``.

        With ``content_length`` >= 0 the body is sent as is and must be exactly that long; else
        it is chunked (HTTP/1.1) or delimited by closing the connection (HTTP/1.0).
        """
        cdef int framing, conn
        cdef bytes head
        if self._resp_state != R_NONE:
            raise RuntimeError("a response was already started for this request")
        self._check_writable()
        framing = body_framing(status, content_length >= 0, self._http10)
        if framing == BODY_CLOSE:
            self._keep_alive = False
        conn = self._conn_mode()
        head = self._writer.head(status, fields, content_type, framing, content_length, conn, None)
        if self._writer.user_close:
            self._keep_alive = False
        self._resp_state = R_STREAMING
        self._resp_framing = framing
        self._resp_remaining = content_length if framing == BODY_LENGTH else -1
        self._resp_silent = self._head_request or framing == BODY_NONE
        self._send(head)

    def write(self, data):
        """Send a piece of a streamed body; returns ``drain()`` for the caller to await.

        Raises ``Disconnected`` once the client is gone, so a producer stops.
        """
        cdef Py_ssize_t n
        if self._resp_state != R_STREAMING:
            raise RuntimeError("write() needs a response started with start_stream()")
        self._check_writable()
        if type(data) is not bytes:
            data = bytes(data)
        n = PyBytes_GET_SIZE(data)
        if n == 0 or self._resp_silent:
            return _READY
        if self._resp_framing == BODY_CHUNKED:
            if n <= COALESCE_BODY_BYTES:
                self._send(encode_chunk(data))
            else:
                self._send(chunk_header(n))
                self._send(data)
                self._send(_CRLF)
        elif self._resp_framing == BODY_LENGTH:
            if n > self._resp_remaining:
                raise ValueError(
                    f"stream body passes its declared Content-Length by {n - self._resp_remaining} bytes")
            self._resp_remaining -= n
            self._send(data)
        else:
            self._send(data)
        return self.drain()

    def end_stream(self):
        """Finish a streamed body (the last chunk for chunked framing)."""
        if self._resp_state != R_STREAMING:
            raise RuntimeError("end_stream() needs a response started with start_stream()")
        self._resp_state = R_DONE
        if self._closing:
            return
        if self._resp_framing == BODY_CHUNKED and not self._resp_silent:
            self._send(_LAST_CHUNK)
        elif self._resp_framing == BODY_LENGTH and self._resp_remaining > 0 and not self._resp_silent:
            # Fewer bytes than promised: the client would wait for the rest, so close (RFC 9112 §6.3).
            self._keep_alive = False
            self._close()
        elif self._resp_framing == BODY_CLOSE:
            self._keep_alive = False

    def drain(self):
        """Await this to wait while the transport's buffer is above its high water mark.

        Creates no future unless writing is paused; raises ``Disconnected`` when the client left.
        """
        if self._closing:
            raise Disconnected("the connection is closed")
        if not self._write_paused:
            return _READY
        if self._drain_waiter is None:
            self._drain_waiter = self._loop.create_future()
        return self._drain_waiter

    @property
    def response_started(self) -> bool:
        return self._resp_state != R_NONE
