# cython: language_level=3
"""The writing half of a client connection: request head, body framing, drain (see reqsender.pxd)."""
from cpython.bytes cimport PyBytes_GET_SIZE

from cyserve._core.http.chunked cimport chunk_header, encode_chunk
from cyserve._core.http.serialise cimport HeadWriter
from cyserve._core.timer cimport monotonic as _now
from cyserve._core.http.serialise cimport BODY_CHUNKED, BODY_LENGTH, BODY_NONE, COALESCE_BODY_BYTES

from cyserve.errors import WriteError

cdef bytes _LAST_CHUNK = b"0\r\n\r\n"
cdef bytes _CRLF = b"\r\n"


cdef class RequestSender(BodyOwner):
    """Request API of a client connection (``send_body``/``end_body``/``stop_body``, ``drain``);
    the loop's ``pause_writing``/``resume_writing`` land here.  ``start`` is the connection's."""

    def __cinit__(self, *args, **kwargs):
        self._writer = HeadWriter(None)
        self._keep_alive = True

    # ---------------------------------------------------------------- flow control
    def pause_writing(self):
        self._write_paused = True

    def resume_writing(self):
        self._write_paused = False
        self._write_deadline = 0
        self._wake_drain()

    cdef int _wake_drain(self) except -1:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return 0

    async def drain(self):
        """Wait while writing is paused; raise the connection's error if it failed meanwhile."""
        if self._exc is not None:
            raise self._exc
        if not self._write_paused or self._closing:
            return
        if self._drain_waiter is None:
            self._drain_waiter = self._loop.create_future()
            if self._write_s > 0:
                self._write_deadline = _now() + self._write_s
                self._arm()
        await self._drain_waiter
        if self._exc is not None:
            raise self._exc

    # ---------------------------------------------------------------- the request
    cdef bytes _request_head(self, str method, str target, object fields,
                             long long content_length, bint chunked, bytes body, bint close):
        cdef int framing
        cdef bytes head
        if chunked:
            if body is not None:
                raise ValueError("a chunked body follows through send_body(), not body=")
            framing = BODY_CHUNKED
        elif content_length >= 0:
            framing = BODY_LENGTH
            if body is not None and PyBytes_GET_SIZE(body) != content_length:
                raise ValueError("content_length differs from len(body)")
        else:
            framing = BODY_NONE
            if body is not None and PyBytes_GET_SIZE(body):
                raise ValueError("a body needs content_length or chunked")
        head = self._writer.request_head(method, target, fields, framing, content_length,
                            close, body)
        self._req_framing = framing
        self._req_remaining = content_length if framing == BODY_LENGTH else 0
        self._req_close = close or self._writer.user_close
        return head

    cdef int _send_request(self, bytes head, bytes body) except -1:
        if body is not None:
            # The whole body is here: it is sent now (behind the head when small).
            self._req_remaining = 0
            self._req_open = False
            self.transport.write(head)
            if PyBytes_GET_SIZE(body) > COALESCE_BODY_BYTES:
                self.transport.write(body)
        else:
            self._req_open = self._req_framing == BODY_CHUNKED or self._req_remaining > 0
            self.transport.write(head)
        return 0

    cdef int _send_framed(self, bytes data) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        if self._req_framing == BODY_CHUNKED:
            if n <= COALESCE_BODY_BYTES:
                self.transport.write(encode_chunk(data))
            else:
                self.transport.writelines((chunk_header(n), data, _CRLF))
        else:
            if n > self._req_remaining:
                self._fail(WriteError("request body longer than its Content-Length"))
                raise ValueError(f"the request body passes its Content-Length by "
                                 f"{n - self._req_remaining} bytes")
            self._req_remaining -= n
            self.transport.write(data)
        return 0

    async def send_body(self, data):
        """Send the next piece of the request body (framed as the head said) and wait while the
        transport is above its high water mark (``write_s`` bounds that wait)."""
        if self._exc is not None:
            raise self._exc
        if not self._req_open:
            raise RuntimeError("no request body is open on this connection")
        if type(data) is not bytes:
            data = bytes(data)
        if PyBytes_GET_SIZE(data) == 0:
            return
        self._send_framed(data)
        if self._write_paused:
            await self.drain()

    def end_body(self):
        """The request body is complete: send the last chunk, start the read deadline."""
        if self._exc is not None:
            raise self._exc
        if not self._req_open:
            return
        if self._req_framing == BODY_CHUNKED:
            self.transport.write(_LAST_CHUNK)
        elif self._req_remaining:
            missing = self._req_remaining
            self._fail(WriteError("request body shorter than its Content-Length"))
            raise ValueError(f"the request body ended {missing} bytes short of its Content-Length")
        self._req_open = False
        self._request_done(True)

    def stop_body(self):
        """Stop sending the request body because a final response already arrived (RFC 9110
        §15: the client may stop).  The request's framing is unfinished, so the connection
        closes once that response has been received."""
        if not self._req_open:
            return
        self._req_open = False
        self._keep_alive = False
        self._request_done(False)

    # ---------------------------------------------------------------- hooks (the reading half's)
    cdef int _fail(self, object exc) except -1:
        raise NotImplementedError("RequestSender._fail is the connection's")

    cdef int _arm(self) except -1:
        raise NotImplementedError("RequestSender._arm is the connection's")

    cdef int _request_done(self, bint complete) except -1:
        raise NotImplementedError("RequestSender._request_done is the connection's")

    # ---------------------------------------------------------------- facts
    @property
    def request_open(self) -> bool:
        return self._req_open

    @property
    def write_paused(self) -> bool:
        return self._write_paused
