# cython: language_level=3
"""The reading half of a client connection: response heads, body framing, read backpressure.

Drives ``_resp_phase`` from ``P_HEAD`` through ``P_BODY`` to ``P_DONE`` (the phases and the
exchange's invariants are in ``client.pyx``); the connection owns the rest of the machine.
"""
cimport cython

from cyserve._core.http.parser cimport FRAMING_CHUNKED, FRAMING_LENGTH, FRAMING_NONE, parse_response
from cyserve._core.timer cimport monotonic as _now

from cyserve.errors import RemoteProtocolError
from cyserve.errors import ProtocolError


cdef class ResponseReader(RequestSender):
    """Response side of a client connection: the loop's ``get_buffer``/``buffer_updated`` land
    here; the head and body found are handed up through ``_head_waiter`` and a ``BodyStream``."""

    def __cinit__(self, ClientState state, *args, **kwargs):
        self._state = state
        self._loop = state.loop
        self._buf = ReceiveBuffer(state.recv_initial, state.recv_max)
        self._scanner = HeadScanner(state.limits, True)
        self._resp_phase = P_IDLE

    # ---------------------------------------------------------------- asyncio protocol callbacks
    def get_buffer(self, Py_ssize_t sizehint):
        self._buf.reserve(self._state.read_chunk)
        # A memoryview, not the buffer itself: stdlib asyncio's TLS transport slices what
        # get_buffer returns (``buf[offset:]``).  The view is released before the next call.
        return memoryview(self._buf)

    def buffer_updated(self, Py_ssize_t nbytes):
        self._buf.commit(nbytes)
        self.response_bytes += nbytes
        if self._read_deadline != 0:
            # Lazy: the timer is not touched; it re-arms itself when it fires early.
            self._read_deadline = _now() + self._read_s
        self._process()

    # ---------------------------------------------------------------- response side
    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int _process(self) except -1:
        cdef Py_ssize_t n, end
        cdef Head head
        cdef bytes raw
        while not self._closing:
            if self._resp_phase == P_HEAD:
                n = self._buf.size()
                if n == 0:
                    return 0
                try:
                    end = self._scanner.find_end(self._buf.head(), n)
                    if end < 0:
                        return 0
                    raw = self._buf.take(end)
                    self._buf.consume(end)
                    self._scanner.reset()
                    head = parse_response(raw, self._state.limits, self._head_request)
                except ProtocolError as exc:
                    self._fail(RemoteProtocolError(f"malformed response head: {exc}"))
                    return 0
                if head.status < 200:
                    if head.status == 101:
                        # We never ask to upgrade, so the bytes after it are not HTTP/1.1.
                        self._fail(RemoteProtocolError("unexpected 101 Switching Protocols"))
                        return 0
                    continue   # interim response (100, 103...): RFC 9110 §15.2, skip it
                self._on_head(head)
            elif self._resp_phase == P_BODY:
                if self._buf.size() == 0 or not self._feed_body():
                    return 0
                self._body_done()
            else:
                if self._buf.size():
                    # Bytes past the response's framing, or with no request outstanding: this
                    # connection's framing can't be trusted any more (RFC 9112 §9.3).
                    self._keep_alive = False
                    if self._resp_phase == P_IDLE:
                        self._resp_phase = P_DEAD
                        self._shut(False)
                return 0
        return 0

    cdef int _on_head(self, Head head) except -1:
        cdef long long cl
        cdef int framing = head.framing
        self._head = head
        if self._connect and 200 <= head.status < 300:
            # RFC 9110 §9.3.6: after a 2xx to CONNECT the connection is a tunnel, whatever the
            # proxy's version or Connection field say; it carries the next exchange.
            pass
        elif not head.keep_alive or self._req_close:
            self._keep_alive = False
        if framing == FRAMING_NONE:
            self._resp_body = b""
            self._wake_head()
            self._body_done()
            return 0
        if framing == FRAMING_LENGTH:
            cl = head.content_length
            if self._buf.size() >= cl:
                # The whole body is here already: hand it up as bytes, no stream at all.
                self._resp_body = self._buf.take(cl)
                self._buf.consume(cl)
                self._wake_head()
                self._body_done()
                return 0
            self._body_remaining = cl
        elif framing == FRAMING_CHUNKED:
            self._decoder = ChunkedDecoder(self._state.max_trailer_bytes)
        self._stream = BodyStream(self)
        self._resp_body = self._stream
        self._resp_phase = P_BODY
        cdef bint done = False
        if self._buf.size():
            done = self._feed_body()
        if done and framing == FRAMING_CHUNKED:
            # A small chunked body that arrived whole: bytes, like a Content-Length one.
            self._resp_body = self._stream.take_all()
        # Wake the caller before the exchange may end: ending it hands the connection on.
        self._wake_head()
        if done:
            self._body_done()
        return 0

    cdef int _feed_body(self) except -1:
        """Move buffered bytes into the body stream; 1 once the body is complete (the caller
        then ends it with ``_body_done``); 0 otherwise, also after a failure."""
        cdef Py_ssize_t n = self._buf.size()
        cdef Py_ssize_t take, consumed
        cdef list out
        cdef bint done = False
        if self._decoder is not None:
            out = []
            try:
                consumed = self._decoder.feed(self._buf.head(), n, out)
            except ProtocolError as exc:
                self._fail(RemoteProtocolError(f"malformed chunked response body: {exc}"))
                return 0
            self._buf.consume(consumed)
            for piece in out:
                self._stream.feed(piece)
            done = self._decoder.done
        elif self._head.framing == FRAMING_LENGTH:
            take = n if n < self._body_remaining else <Py_ssize_t>self._body_remaining
            self._stream.feed(self._buf.take(take))
            self._buf.consume(take)
            self._body_remaining -= take
            done = self._body_remaining == 0
        else:
            self._stream.feed(self._buf.take(n))
            self._buf.consume(n)
        if done:
            return 1
        if not self._read_paused and self._stream.buffered > self._state.read_high:
            self._read_paused = True
            # A slow consumer is not a slow server: no read deadline while we hold back.
            self._read_deadline = 0
            self._update_reading()
        return 0

    cdef int _body_done(self) except -1:
        self._decoder = None
        if self._stream is not None:
            self._stream.feed_eof()
        self._resp_phase = P_DONE
        self._read_deadline = 0
        if self._read_paused:
            self._read_paused = False
            self._update_reading()
        self._maybe_release()
        return 0

    cdef int _wake_head(self) except -1:
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._head, self._resp_body))
        # An uploader stuck behind a full send buffer looks again: a server that answered
        # early may never read the rest (the uploader then stops, see ``stop_body``).
        self._wake_drain()
        return 0

    # ---------------------------------------------------------------- read backpressure
    cdef int _update_reading(self) except -1:
        if self._closing or self.transport is None:
            return 0
        if self._read_paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()
            if self._resp_phase == P_HEAD or self._resp_phase == P_BODY:
                if self._read_s > 0 and not self._req_open:
                    self._read_deadline = _now() + self._read_s
                    self._arm()
        return 0

    cdef int _body_consumed(self, Py_ssize_t n) except -1:
        if (self._read_paused and self._stream is not None and self._resp_phase == P_BODY
                and self._stream.buffered <= self._state.read_low):
            self._read_paused = False
            self._update_reading()
        return 0

    # ---------------------------------------------------------------- hooks (the connection's)
    cdef int _maybe_release(self) except -1:
        raise NotImplementedError("ResponseReader._maybe_release is the connection's")

    cdef int _shut(self, bint abort) except -1:
        raise NotImplementedError("ResponseReader._shut is the connection's")

    # ---------------------------------------------------------------- facts
    @property
    def reading_paused(self) -> bool:
        return self._read_paused

    @property
    def response_complete(self) -> bool:
        return self._resp_phase == P_DONE or self._resp_phase == P_IDLE
