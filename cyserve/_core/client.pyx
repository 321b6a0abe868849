# cython: language_level=3
"""HTTP/1.1 client connection: request framing, response parsing, body streaming, flow control.

Response phases (``_resp_phase``), one exchange at a time (no pipelining):

- ``P_IDLE``: no exchange.  Any byte arriving now is unsolicited: the connection is closed
  (RFC 9112 §9.3: nothing may precede the response to the next request).
- ``P_HEAD``: a request was started; bytes are the response head (interim 1xx heads are parsed
  and skipped, RFC 9110 §15.2).
- ``P_BODY``: the head is parsed; bytes are its body, fed to a ``BodyStream``.
- ``P_DONE``: the response is complete; the request body may still be open (early response).
- ``P_DEAD``: failed or closing; never reused.

Invariants: the exchange ends (the connection goes back to its listener, the pool) only when
the request was sent in full *and* the response was received in full with keep-alive and no byte
beyond its framing; otherwise the connection closes.  Reading is paused exactly while the unread
body in the stream is above ``read_high`` and below it again at ``read_low``.  ``_exc``, once set,
is final: the connection is aborted and every later call raises it.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_Check

from cyserve._core.body cimport BodyOwner, BodyStream
from cyserve._core.buffer cimport ReceiveBuffer
from cyserve._core.chunked cimport ChunkedDecoder, chunk_header
from cyserve._core.parser cimport (
    FRAMING_CHUNKED, FRAMING_CLOSE, FRAMING_LENGTH, FRAMING_NONE, Head, HeadScanner, ParserLimits,
    parse_response,
)
from cyserve._core.chars cimport C_TCHAR, CLASS
from cyserve._core.sender cimport Ready
from cyserve._core.timer cimport monotonic as _now
from cyserve._core.writer cimport BODY_CHUNKED, BODY_LENGTH, BODY_NONE, COALESCE_BODY_BYTES, HeadWriter

from cyserve._client.errors import (
    ReadError, ReadTimeout, RemoteProtocolError, TotalTimeout, WriteError, WriteTimeout,
)
from cyserve.errors import ProtocolError

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    int PyUnicode_1BYTE_KIND

cdef enum:
    P_IDLE = 0
    P_HEAD = 1
    P_BODY = 2
    P_DONE = 3
    P_DEAD = 4

cdef bytes _LAST_CHUNK = b"0\r\n\r\n"
cdef bytes _CRLF = b"\r\n"
cdef bytes _CHUNKED_LINE = b"Transfer-Encoding: chunked\r\n"
cdef bytes _CLOSE_LINE = b"Connection: close\r\n"
cdef bytes _VERSION_TAIL = b" HTTP/1.1\r\n"

cdef inline double _earliest(double a, double b) noexcept:
    # The earlier of two deadlines, where 0 means "none".
    if a == 0:
        return b
    if b == 0 or a < b:
        return a
    return b


def monotonic() -> float:
    """The clock every client deadline is measured on (CLOCK_MONOTONIC)."""
    return _now()


@cython.boundscheck(False)
@cython.wraparound(False)
cdef bytes request_head(HeadWriter w, str method, str target, object fields, int framing,
                        long long content_length, bint close, object body):
    cdef const unsigned char* p
    cdef Py_ssize_t n, i
    cdef char digits[24]
    cdef int nd = 0
    cdef unsigned long long cl
    # method = token (RFC 9110 §9.1); request-target has no whitespace or CTL (RFC 9112 §3.2):
    # both are checked here so no caller can smuggle a second request line through them.
    if PyUnicode_KIND(method) != PyUnicode_1BYTE_KIND:
        raise ValueError(f"method {method!r} is not a token")
    p = <const unsigned char*>PyUnicode_DATA(method)
    n = PyUnicode_GET_LENGTH(method)
    if n == 0:
        raise ValueError("empty method")
    for i in range(n):
        if not CLASS[p[i]] & C_TCHAR:  # the method is a token, RFC 9110 §5.6.2
            raise ValueError(f"method {method!r} is not a token (RFC 9110 §9.1)")
    w._len = 0
    w.user_close = False
    w._put(<const char*>p, n)
    w._put(b" ", 1)
    if PyUnicode_KIND(target) != PyUnicode_1BYTE_KIND:
        raise ValueError(f"request target {target!r} is not ASCII (percent-encode it)")
    p = <const unsigned char*>PyUnicode_DATA(target)
    n = PyUnicode_GET_LENGTH(target)
    if n == 0:
        raise ValueError("empty request target")
    for i in range(n):
        if p[i] <= 0x20 or p[i] >= 0x7f:
            raise ValueError(f"request target {target!r} contains whitespace, a control or a "
                             "non-ASCII byte (RFC 9112 §3.2)")
    w._put(<const char*>p, n)
    w._put(PyBytes_AS_STRING(_VERSION_TAIL), PyBytes_GET_SIZE(_VERSION_TAIL))
    if fields:
        for name, value in fields:
            w._put_field(name, value)
    if framing == BODY_LENGTH:
        w._put(b"Content-Length: ", 16)
        cl = <unsigned long long>content_length
        if cl == 0:
            w._put(b"0", 1)
        else:
            while cl:
                digits[23 - nd] = <char>(48 + cl % 10)
                cl //= 10
                nd += 1
            w._put(digits + 24 - nd, nd)
        w._put(b"\r\n", 2)
    elif framing == BODY_CHUNKED:
        w._put(PyBytes_AS_STRING(_CHUNKED_LINE), PyBytes_GET_SIZE(_CHUNKED_LINE))
    if close or w.user_close:
        w._put(PyBytes_AS_STRING(_CLOSE_LINE), PyBytes_GET_SIZE(_CLOSE_LINE))
    w._put(b"\r\n", 2)
    if body is not None and PyBytes_GET_SIZE(body) <= COALESCE_BODY_BYTES:
        w._put(PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
    return PyBytes_FromStringAndSize(<char*>w._buf, w._len)


def serialise_request(str method, str target, fields=None, long long content_length=-1,
                      bint chunked=False, bint close=False, bytes body=None) -> bytes:
    """Python face of ``request_head`` (tests, and anything that writes a request by hand)."""
    cdef int framing = BODY_CHUNKED if chunked else (BODY_LENGTH if content_length >= 0 else BODY_NONE)
    return request_head(HeadWriter(None), method, target, fields, framing, content_length, close, body)


cdef Ready _READY = Ready()


@cython.final
cdef class ClientState:
    """What every connection of one ``Client`` shares (see client.pxd)."""

    def __cinit__(self, loop, *, Py_ssize_t max_head_bytes=65536, Py_ssize_t max_header_count=100,
                  Py_ssize_t max_trailer_bytes=8192, Py_ssize_t read_high=262144,
                  Py_ssize_t read_low=65536, Py_ssize_t write_high=262144,
                  Py_ssize_t write_low=65536, double keepalive_s=5.0,
                  Py_ssize_t read_chunk=65536):
        if not 0 <= read_low <= read_high or not 0 <= write_low <= write_high:
            raise ValueError("water marks need 0 <= low <= high")
        self.loop = loop
        # A status line has no 414 rule; the request-line limit only bounds the scanner's first
        # line in request mode, so it just has to fit inside the head limit.
        self.limits = ParserLimits(min(8192, max_head_bytes), max_head_bytes, max_header_count)
        self.max_trailer_bytes = max_trailer_bytes
        self.read_high = read_high
        self.read_low = read_low
        self.write_high = write_high
        self.write_low = write_low
        self.keepalive_s = keepalive_s
        self.read_chunk = read_chunk
        self.recv_initial = max(16384, read_chunk)
        # A whole head must fit, plus one read of body behind it.
        self.recv_max = max_head_bytes + 2 * read_chunk


cdef class HTTPClientCore(BodyOwner):
    """One client connection.  ``start`` / ``send_body`` / ``end_body`` send a request; the
    future ``start`` returns resolves with ``(head, body)`` (``body`` is ``bytes`` when the whole
    body was already here, else a ``BodyStream``) or ``None`` after a failure (see ``error``)."""

    def __cinit__(self, ClientState state, origin=None, *args, **kwargs):
        self._state = state
        self.origin = origin
        self._buf = ReceiveBuffer(state.recv_initial, state.recv_max)
        self._scanner = HeadScanner(state.limits, True)
        self._writer = HeadWriter(None)
        self._resp_phase = P_IDLE
        self._keep_alive = True

    # ---------------------------------------------------------------- asyncio protocol callbacks
    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=self._state.write_high, low=self._state.write_low)

    def set_transport(self, transport):
        """Switch to a new transport over the same socket (TLS started inside a proxy tunnel)."""
        self.transport = transport
        transport.set_write_buffer_limits(high=self._state.write_high, low=self._state.write_low)

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

    def eof_received(self):
        self._peer_eof = True
        if self._resp_phase == P_BODY and self._head.framing == FRAMING_CLOSE:
            # RFC 9112 §6.3 item 8: the close is what ends this body.
            self._body_done()
        elif self._resp_phase == P_HEAD or self._resp_phase == P_BODY:
            self._fail(self._closed_error(None))
        elif self._resp_phase == P_IDLE:
            self._keep_alive = False
        return False

    def connection_lost(self, exc):
        self.closed = True
        self._closing = True
        if self._resp_phase == P_BODY and exc is None and self._head.framing == FRAMING_CLOSE:
            self._body_done()   # a TLS peer that closed without close_notify ends the body too
        if self._resp_phase == P_HEAD or self._resp_phase == P_BODY:
            self._fail(self._closed_error(exc))
        elif self._req_open:
            self._fail(WriteError(f"the connection was lost while sending the request: {exc}"
                                  if exc else "the server closed the connection while the request "
                                  "was being sent"))
        else:
            self._cancel_timer()
            waiter = self._drain_waiter
            if waiter is not None:
                self._drain_waiter = None
                if not waiter.done():
                    waiter.set_result(None)
        listener = self.listener
        if listener is not None:
            listener.connection_closed(self)

    cdef _closed_error(self, object exc):
        if exc is not None:
            return ReadError(f"the connection was lost while receiving the response: {exc}")
        if self._resp_phase == P_HEAD:
            if self.response_bytes == 0:
                return RemoteProtocolError("the server closed the connection without sending a response")
            return RemoteProtocolError("the server closed the connection inside a response head")
        return RemoteProtocolError("the server closed the connection before the response body "
                                   "was complete (RFC 9112 §8)")

    def pause_writing(self):
        self._write_paused = True

    def resume_writing(self):
        self._write_paused = False
        self._write_deadline = 0
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

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

    cdef int _maybe_release(self) except -1:
        if self._resp_phase != P_DONE or self._req_open:
            return 0
        self._total_deadline = 0
        self._write_deadline = 0
        self._head_waiter = None
        if (self._keep_alive and not self._peer_eof and not self._closing
                and self._buf.size() == 0):
            self._resp_phase = P_IDLE
            self._head = None
            self._stream = None
            self._resp_body = None
            self.idle_since = _now()
            if self._state.keepalive_s > 0:
                self._idle_deadline = self.idle_since + self._state.keepalive_s
                self._arm()
            if self.listener is not None:
                self.listener.connection_released(self)
        else:
            self._resp_phase = P_DEAD
            self._stream = None
            self._shut(False)
        return 0

    cdef int _wake_head(self) except -1:
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._head, self._resp_body))
        # An uploader stuck behind a full send buffer looks again: a server that answered
        # early may never read the rest (the uploader then stops, see ``stop_body``).
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return 0

    # ---------------------------------------------------------------- failure and flow control
    cdef int _fail(self, object exc) except -1:
        """Final: store ``exc``, wake every waiter, abort the transport."""
        if self._exc is None:
            self._exc = exc
        self._resp_phase = P_DEAD
        self._req_open = False
        self._keep_alive = False
        self._cancel_timer()
        if self._stream is not None and not self._stream.eof:
            self._stream.fail(exc)
        waiter = self._head_waiter
        self._head_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        waiter = self._drain_waiter
        self._drain_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._shut(True)
        return 0

    cdef int _shut(self, bint abort) except -1:
        """Close (or abort) the transport once, and tell the listener now: the pool frees the
        slot at once instead of when the loop reports the connection lost."""
        if self._closing:
            return 0
        self._closing = True
        self._cancel_timer()
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()
        if self.listener is not None:
            self.listener.connection_closed(self)
        return 0

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

    # ---------------------------------------------------------------- timers
    cdef int _arm(self) except -1:
        """One lazy timer for four deadlines: touch the loop only to fire earlier."""
        cdef double d = _earliest(_earliest(self._read_deadline, self._write_deadline),
                                  _earliest(self._total_deadline, self._idle_deadline))
        if d == 0 or self._closing:
            return 0
        if self._timer is not None:
            if self._timer_at <= d + 0.001:
                return 0
            self._timer.cancel()
        self._timer_at = d
        self._timer = self._state.loop.call_later(max(d - _now(), 0.0), self._on_timer)
        return 0

    cdef _cancel_timer(self):
        self._read_deadline = self._write_deadline = self._total_deadline = self._idle_deadline = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self):
        cdef double now = _now() + 0.001
        self._timer = None
        if self._closing:
            return
        if self._total_deadline and now >= self._total_deadline:
            self._fail(TotalTimeout("the request took longer than its total timeout"))
        elif self._write_deadline and now >= self._write_deadline:
            self._fail(WriteTimeout(f"the server accepted no request bytes for {self._write_s:g}s"))
        elif self._read_deadline and now >= self._read_deadline:
            self._fail(ReadTimeout(f"no response bytes arrived for {self._read_s:g}s"))
        elif self._idle_deadline and now >= self._idle_deadline:
            # Keep-alive expiry of a pooled connection (closing is never an error here).
            self._resp_phase = P_DEAD
            self._shut(False)
        else:
            self._arm()

    # ---------------------------------------------------------------- request side (the Python face)
    def start(self, str method, str target, fields, long long content_length=-1,
              bint chunked=False, bytes body=None, bint close=False, bint head_request=False,
              double read_s=0, double write_s=0, double total_s=0):
        """Send a request head (and ``body`` when given); return the future of its response.

        ``content_length`` >= 0 sends Content-Length (the body then is ``body`` or follows through
        ``send_body``); ``chunked`` sends Transfer-Encoding: chunked.  ``head_request``: the
        response carries no body (HEAD, CONNECT).  Deadlines are seconds, 0 for none.
        """
        cdef int framing
        cdef double now
        if self._exc is not None:
            raise self._exc
        if self._resp_phase != P_IDLE or self._closing:
            raise RuntimeError("the connection is busy or closed")
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
        head = request_head(self._writer, method, target, fields, framing, content_length,
                            close, body)
        self.exchanges += 1
        self.response_bytes = 0
        self._req_framing = framing
        self._req_remaining = content_length if framing == BODY_LENGTH else 0
        self._req_close = close or self._writer.user_close
        self._keep_alive = not self._req_close
        self._head_request = head_request
        self._connect = method == "CONNECT"
        self._head = None
        self._resp_body = None
        self._stream = None
        self._scanner.reset()
        self._read_s = read_s
        self._write_s = write_s
        self._idle_deadline = 0
        now = _now()
        self._total_deadline = now + total_s if total_s > 0 else 0
        self._resp_phase = P_HEAD
        if body is not None:
            self._req_remaining = 0
            self._req_open = False
            self.transport.write(head)
            if PyBytes_GET_SIZE(body) > COALESCE_BODY_BYTES:
                self.transport.write(body)
        else:
            self._req_open = framing == BODY_CHUNKED or self._req_remaining > 0
            self.transport.write(head)
        self._read_deadline = now + read_s if (read_s > 0 and not self._req_open) else 0
        waiter = self._state.loop.create_future()
        self._head_waiter = waiter
        self._arm()
        return waiter

    cdef int _send_framed(self, bytes data) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        if self._req_framing == BODY_CHUNKED:
            if n <= COALESCE_BODY_BYTES:
                self.transport.write(chunk_header(n) + data + _CRLF)
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

    async def drain(self):
        """Wait while writing is paused; raise the connection's error if it failed meanwhile."""
        if self._exc is not None:
            raise self._exc
        if not self._write_paused or self._closing:
            return
        if self._drain_waiter is None:
            self._drain_waiter = self._state.loop.create_future()
            if self._write_s > 0:
                self._write_deadline = _now() + self._write_s
                self._arm()
        await self._drain_waiter
        if self._exc is not None:
            raise self._exc

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
        if (self._resp_phase == P_HEAD or self._resp_phase == P_BODY) and self._read_s > 0 \
                and not self._read_paused:
            self._read_deadline = _now() + self._read_s
            self._arm()
        self._maybe_release()

    def stop_body(self):
        """Stop sending the request body because a final response already arrived (RFC 9110
        §15: the client may stop).  The request's framing is unfinished, so the connection
        closes once that response has been received."""
        if not self._req_open:
            return
        self._req_open = False
        self._keep_alive = False
        self._maybe_release()

    def abort(self, exc=None):
        """Give up on this connection (the caller cancelled or stopped reading): close it now."""
        self._fail(exc if exc is not None else ReadError("the exchange was abandoned"))

    def close(self):
        """Close an idle connection (pool shutdown, eviction)."""
        if not self._closing:
            self._resp_phase = P_DEAD
            self._shut(False)

    # ---------------------------------------------------------------- connection facts
    @property
    def error(self):
        """Why the connection failed, or None."""
        return self._exc

    @property
    def is_reusable(self) -> bool:
        """Idle, open, the server has not half-closed, nothing unsolicited arrived."""
        return (self._resp_phase == P_IDLE and not self._closing and not self._peer_eof
                and self._exc is None and self._buf.size() == 0)

    @property
    def request_open(self) -> bool:
        return self._req_open

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    @property
    def reading_paused(self) -> bool:
        return self._read_paused

    @property
    def response_complete(self) -> bool:
        return self._resp_phase == P_DONE or self._resp_phase == P_IDLE
