# cython: language_level=3
"""HTTP/1.1 server connection: framing, keep-alive, pipelining, flow control, timeouts.

Request phases (``_phase``), one request in flight at a time (RFC 9112 §9.3.2: responses to
pipelined requests go out in request order, so later heads simply wait in the receive buffer):

- ``S_IDLE``: no request in flight; bytes in the buffer are the start of the next head.
- ``S_BODY``: a request is in flight and its body is still arriving; buffered bytes are body.
- ``S_BUSY``: a request is in flight and its body is complete; buffered bytes are pipelined.
- ``S_DEAD``: framing can no longer be trusted (a failed body); nothing more is read.

Invariants: the handler runs only in S_BODY/S_BUSY; ``_discarding`` only in S_BODY after the
handler finished; reading is paused exactly while ``_paused_for_body or _paused_for_pipeline``
(or the connection is closing).  The response side lives in the base class ``Sender``.
"""
cimport cython
from cpython.bytes cimport PyBytes_GET_SIZE

from cyserve._core.http.body cimport BodyStream
from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.http.chunked cimport ChunkedDecoder
from cyserve._core.http.parser cimport (
    FRAMING_CHUNKED, FRAMING_LENGTH, Head, HeadScanner, ParserLimits, parse_request,
)
from cyserve._core.sender cimport R_DONE, R_NONE, R_STREAMING, Sender
from cyserve._core.state cimport MIN_READ_BYTES, ServerState
from cyserve._core.timer cimport Deadline
from cyserve._core.http.serialise cimport CONN_CLOSE, CONN_KEEP_ALIVE, CONN_NONE, HeadWriter

import asyncio
import logging
from http import HTTPStatus

from cyserve._core.http.eager import drive
from cyserve.errors import Disconnected, ProtocolError

from cpython.ref cimport PyObject, Py_XDECREF

cdef extern from "Python.h":
    # PEP 590-era C API (3.10+): resume a coroutine without raising StopIteration on return.
    int PyIter_Send(object iterator, object arg, PyObject** presult) except? -1
    int PYGEN_RETURN
    int PYGEN_NEXT
    object PyContext_CopyCurrent()
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1

cdef enum:
    S_IDLE = 0
    S_BODY = 1
    S_BUSY = 2
    S_DEAD = 3

cdef enum:
    T_NONE = 0
    T_FIRST = 1        # accepted, no byte yet
    T_HEAD = 2         # a head is arriving (total deadline: slowloris)
    T_BODY = 3         # a body is arriving (idle deadline)
    T_KEEPALIVE = 4    # between requests

cdef bytes _CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

cdef object _log = logging.getLogger("cyserve.server")


cdef class HTTPServerCore(Sender):
    """One HTTP/1.1 server connection: the request side over the response side (``Sender``)."""

    def __cinit__(self, ServerState state, *args, **kwargs):
        self._state = state
        self._loop = state.loop
        self._buf = ReceiveBuffer(state.recv_initial, state.recv_max)
        self._scanner = HeadScanner(state.limits)
        self._writer = HeadWriter(state.server_name)
        self._deadline = Deadline(state.loop, self._on_deadline)
        self._phase = S_IDLE

    # ---------------------------------------------------------------- asyncio protocol callbacks
    def connection_made(self, transport):
        self.transport = transport
        self.peername = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        transport.set_write_buffer_limits(high=self._state.write_high, low=self._state.write_low)
        self._state.connections.add(self)
        if self._state.shutting_down:
            self._close()
            return
        self._deadline.set(T_FIRST, self._state.first_request_s)

    def get_buffer(self, Py_ssize_t sizehint):
        self._buf.reserve(MIN_READ_BYTES)
        return self._buf

    def buffer_updated(self, Py_ssize_t nbytes):
        self._buf.commit(nbytes)
        if not self._processing:
            self._process()

    def eof_received(self):
        # The client will send nothing more.  Most clients hang up this way (FIN, not RST), so
        # handlers watching for a disconnect learn of it now; a response in progress is still
        # written in case the client only half-closed (RFC 9112 §9.6).
        self._peer_eof = True
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._phase == S_BODY:
            self._body_failed(ProtocolError("the request body ended before its declared length", 400))
        if self._handler_running or self._phase == S_BODY:
            return True  # half-close: the response can still be written, then we close
        return False

    def connection_lost(self, exc):
        self._closed = True
        self._deadline.cancel()
        self._state.forget(self)
        gone = Disconnected("the client closed the connection")
        self._writes_lost(gone)
        if self._body is not None:
            self._body.fail(gone)
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---------------------------------------------------------------- request side
    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int _process(self) except -1:
        cdef Py_ssize_t n, end, skip
        cdef const unsigned char* data
        cdef Head head
        self._processing = True
        try:
            while not self._closing:
                if self._phase == S_BODY:
                    if self._buf.size() == 0 or not self._feed_body():
                        break
                    continue
                if self._phase == S_BUSY:
                    if (not self._paused_for_pipeline
                            and self._buf.size() >= self._state.max_pipeline_bytes):
                        self._paused_for_pipeline = True
                        self._update_reading()
                    break
                if self._phase == S_DEAD:
                    break
                n = self._buf.size()
                if n == 0:
                    break
                data = self._buf.head()
                # RFC 9112 §2.2: a server SHOULD ignore empty lines received before a request line.
                skip = 0
                while skip + 1 < n and data[skip] == 13 and data[skip + 1] == 10:
                    skip += 2
                if skip:
                    self._buf.consume(skip)
                    continue
                try:
                    end = self._scanner.find_end(data, n)
                    if end < 0:
                        # Incomplete: the head deadline runs from this first pass that saw its
                        # bytes (slowloris); a head that arrives whole never touches the timer.
                        if self._deadline.kind != T_HEAD:
                            self._deadline.set(T_HEAD, self._state.head_s)
                        break
                    raw = self._buf.take(end)
                    self._buf.consume(end)
                    self._scanner.reset()
                    head = parse_request(raw, self._state.limits)
                except ProtocolError as exc:
                    self._reject(exc)
                    break
                self._start_request(head)
        finally:
            self._processing = False
            if self._out_bytes:
                self._flush()
        return 0

    cdef int _start_request(self, Head head) except -1:
        cdef Py_ssize_t avail
        cdef long long length
        cdef object body = b""
        cdef ServerState state = self._state
        self._requests += 1
        self._head = head
        self._http10 = head.version == 10
        self._head_request = head.method == "HEAD"
        self._keep_alive = head.keep_alive and not state.shutting_down and not self._peer_eof and (
            state.max_keepalive_requests <= 0 or self._requests < state.max_keepalive_requests)
        self._resp_state = R_NONE
        self._body_received = 0
        self._continue_owed = False
        self._phase = S_BUSY
        if head.framing == FRAMING_LENGTH:
            length = head.content_length
            if length > state.max_body_bytes:
                # RFC 9110 §15.5.14: refuse at once, before any of the body is read.
                self._reject(ProtocolError(
                    f"request body of {length} bytes exceeds the {state.max_body_bytes}-byte limit", 413))
                return 0
            avail = self._buf.size()
            if avail >= length:
                body = self._buf.take(length)
                self._buf.consume(length)
            else:
                self._body = BodyStream(self)
                self._body_remaining = length
                self._phase = S_BODY
                self._continue_owed = head.expect_continue and avail == 0
                body = self._body
        elif head.framing == FRAMING_CHUNKED:
            self._decoder = ChunkedDecoder(state.max_trailer_bytes)
            self._body = BodyStream(self)
            self._phase = S_BODY
            self._continue_owed = head.expect_continue and self._buf.size() == 0
            if self._buf.size():
                self._feed_body()
            if self._phase == S_DEAD:
                return 0  # the buffered chunked body was malformed or too large: answered
            if self._phase == S_BUSY:
                # The whole chunked body was already here: hand it up as bytes.
                body = self._body.take_all()
                self._body = None
            else:
                body = self._body
        if self._phase == S_BODY:
            self._deadline.set(T_BODY, state.body_idle_s)
        else:
            self._deadline.set(T_NONE, 0)
        self._dispatch(head, body)
        return 0

    cdef int _feed_body(self) except -1:
        """Move buffered body bytes into the body stream; 1 when the body completed."""
        cdef Py_ssize_t n = self._buf.size()
        cdef Py_ssize_t take, consumed
        cdef list out
        cdef bint done
        cdef ServerState state = self._state
        if self._decoder is None:
            take = n if n < self._body_remaining else <Py_ssize_t>self._body_remaining
            if not self._discarding:
                self._body.feed(self._buf.take(take))
            self._buf.consume(take)
            self._body_remaining -= take
            self._body_received += take
            done = self._body_remaining == 0
        else:
            out = []
            try:
                consumed = self._decoder.feed(self._buf.head(), n, out)
            except ProtocolError as exc:
                self._body_failed(exc)
                return 0
            self._buf.consume(consumed)
            for piece in out:
                self._body_received += PyBytes_GET_SIZE(piece)
                if not self._discarding:
                    self._body.feed(piece)
            if self._body_received > state.max_body_bytes:
                self._body_failed(ProtocolError(
                    f"chunked request body exceeds the {state.max_body_bytes}-byte limit", 413))
                return 0
            done = self._decoder.done
        if not done:
            if self._deadline.kind == T_BODY:
                self._deadline.bump(state.body_idle_s)
            if (not self._discarding and not self._paused_for_body
                    and self._body.buffered > state.body_high):
                self._paused_for_body = True
                self._update_reading()
            return 0
        if self._body is not None:
            self._body.feed_eof()
        self._decoder = None
        self._phase = S_BUSY
        self._deadline.set(T_NONE, 0)
        if self._discarding:
            self._discarding = False
            self._next_request()
        return 1

    cdef int _body_failed(self, object exc) except -1:
        """The body can't be read to its end: fail the stream; the connection will close."""
        self._keep_alive = False
        self._phase = S_DEAD
        self._deadline.set(T_NONE, 0)
        if self._body is not None:
            self._body.fail(exc)
        if self._paused_for_body:
            self._paused_for_body = False
            self._update_reading()
        if not self._handler_running:
            if self._resp_state == R_NONE and self._head is not None and not self._discarding:
                self._reject(exc)
            else:
                self._close()
        return 0

    cdef int _body_consumed(self, Py_ssize_t n) except -1:
        if self._paused_for_body and self._body is not None and self._body.buffered <= self._state.body_low:
            self._paused_for_body = False
            self._update_reading()
        return 0

    cdef int _body_wanted(self) except -1:
        # RFC 9110 §10.1.1: send 100 Continue only once the handler asks for the body, and only
        # while no final response has started.
        if self._continue_owed and self._resp_state == R_NONE and not self._closing:
            self._continue_owed = False
            self._send(_CONTINUE)
        return 0

    # ---------------------------------------------------------------- handler
    cdef int _dispatch(self, Head head, object body) except -1:
        """Run the handler's first step now; only a handler that suspends gets a Task."""
        cdef PyObject* raw_result = NULL
        cdef int status
        cdef object yielded
        self._handler_running = True
        # Each request runs in its own copy of the context (contextvars set by one request
        # never leak into the next, nor into the loop's callbacks).
        ctx = PyContext_CopyCurrent()
        coro = self._state.entry(self, head, body)
        PyContext_Enter(ctx)
        try:
            status = PyIter_Send(coro, None, &raw_result)
        except BaseException as exc:
            PyContext_Exit(ctx)
            self._handler_failed(exc)
            return 0
        PyContext_Exit(ctx)
        yielded = <object>raw_result
        Py_XDECREF(raw_result)
        if status == PYGEN_RETURN:
            self._handler_done()
            return 0
        task = self._state.loop.create_task(drive(coro, yielded), context=ctx)
        self._task = task
        task.add_done_callback(self._on_task_done)
        return 0

    def _on_task_done(self, task):
        self._task = None
        if task.cancelled():
            self._handler_failed(asyncio.CancelledError())
            return
        exc = task.exception()
        if exc is not None:
            self._handler_failed(exc)
        else:
            self._handler_done()
        if not self._processing and not self._closing:
            self._process()

    cdef int _handler_done(self) except -1:
        self._handler_running = False
        if self._closing:
            return 0
        if self._resp_state == R_NONE:
            _log.error("handler for %s %s returned without a response",
                       self._head.method, self._head.target)
            self._keep_alive = False
            self._respond_status(500)
        elif self._resp_state == R_STREAMING:
            self.end_stream()
        self._finish_request()
        return 0

    cdef int _handler_failed(self, object exc) except -1:
        self._handler_running = False
        if self._closing:
            return 0  # the client left: whatever the handler was doing no longer matters
        if isinstance(exc, ProtocolError) and self._resp_state == R_NONE:
            self._reject(exc)
            return 0
        if not isinstance(exc, (asyncio.CancelledError, Disconnected)):
            _log.error("unhandled error in handler for %s %s", self._head.method, self._head.target,
                       exc_info=exc)
        if self._resp_state == R_NONE:
            self._keep_alive = False
            self._respond_status(500)
            self._finish_request()
        else:
            # The head is out and the body is cut short: framing can't be trusted, so close.
            self._close()
        return 0

    cdef int _finish_request(self) except -1:
        if self._phase == S_BODY:
            # The handler did not read the whole body.  Drain it (bounded by the body limit)
            # only when the response kept the connection; otherwise close.
            if not self._keep_alive:
                self._close()
                return 0
            self._discarding = True
            self._body = None
            if self._paused_for_body:
                self._paused_for_body = False
                self._update_reading()
            return 0
        if self._phase == S_DEAD:
            self._close()
            return 0
        self._next_request()
        return 0

    cdef int _next_request(self) except -1:
        self._head = None
        self._body = None
        self._decoder = None
        if not self._keep_alive or self._peer_eof or self._state.shutting_down:
            self._close()
            return 0
        self._phase = S_IDLE
        self._resp_state = R_NONE
        if self._paused_for_pipeline:
            self._paused_for_pipeline = False
            self._update_reading()
        if self._buf.size() == 0:
            self._deadline.set(T_KEEPALIVE, self._state.keepalive_s)
        return 0

    # ---------------------------------------------------------------- errors and closing
    cdef int _reject(self, object exc) except -1:
        """Answer a ProtocolError with its status and ``Connection: close``, then close."""
        cdef int status = getattr(exc, "status", 400)
        self._keep_alive = False
        self._phase = S_DEAD
        if self._resp_state == R_NONE and not self._closing:
            self._respond_status(status, str(exc))
        self._close()
        return 0

    cdef _respond_status(self, int status, str detail=None):
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        text = f"{status} {phrase}: {detail}\n" if detail else f"{status} {phrase}\n"
        self._keep_alive = False
        self.respond(status, None, text.encode("utf-8", "replace"), "text/plain; charset=utf-8")

    cdef int _close(self) except -1:
        self._deadline.set(T_NONE, 0)
        Sender._close(self)
        return 0

    cdef int _conn_mode(self) except -1:
        # A body the handler left unread keeps the connection only when it is a short
        # Content-Length body we can drain; an unsent 100 Continue means the client may never send
        # it (RFC 9110 §10.1.1), so close.
        if self._phase == S_BODY and (self._continue_owed or self._decoder is not None
                                      or self._body_remaining > self._state.body_high):
            self._keep_alive = False
        if self._phase == S_DEAD or self._state.shutting_down:
            self._keep_alive = False
        return Sender._conn_mode(self)

    cdef int _update_reading(self) except -1:
        cdef bint want_paused = self._paused_for_body or self._paused_for_pipeline
        if self._closing or self.transport is None or want_paused == self._read_paused:
            return 0
        self._read_paused = want_paused
        if want_paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()
        return 0

    # ---------------------------------------------------------------- timeouts
    def _on_deadline(self, int kind):
        if self._closing:
            return
        if kind == T_HEAD:
            # RFC 9110 §15.5.9: 408 when the client is too slow to send a complete request.
            self._reject(ProtocolError("the request head was not received in time", 408))
        elif kind == T_BODY:
            self._body_failed(ProtocolError("the request body stalled", 408))
        else:
            self._close()  # idle before a first request, or between requests

    # ---------------------------------------------------------------- server shutdown
    def begin_shutdown(self):
        """No more keep-alive: close now when idle, else after the current response."""
        self._keep_alive = False
        if self._phase == S_IDLE and not self._handler_running and self._buf.size() == 0:
            self._close()

    def abort(self):
        """The shutdown grace period ran out: cancel the handler and drop the connection."""
        if self._task is not None:
            self._task.cancel()
        if self.transport is not None:
            self.transport.abort()

    # ---------------------------------------------------------------- connection facts
    @property
    def reading_paused(self) -> bool:
        """True while reading is paused for backpressure (body or pipeline water marks)."""
        return self._read_paused

    @property
    def requests_served(self) -> int:
        return self._requests

    def is_disconnected(self) -> bool:
        """True once the client closed (or half-closed) the connection, or it was closed."""
        return self._closing or self._peer_eof

    def wait_disconnected(self):
        """A future resolved when the connection is lost."""
        if self._disconnect_waiter is None:
            self._disconnect_waiter = self._state.loop.create_future()
            if self._closed or self._peer_eof:
                self._disconnect_waiter.set_result(None)
        return self._disconnect_waiter
