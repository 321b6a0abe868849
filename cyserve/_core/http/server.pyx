# cython: language_level=3
"""The HTTP/1.1 server role: framing, keep-alive, pipelining, timeouts, the switch to another
protocol (see server.pxd).

Phases (``_phase``), one request in flight at a time (RFC 9112 §9.3.2: responses to pipelined
requests go out in request order, so later heads simply wait in the stream's buffer):

- ``S_IDLE``: no request in flight; buffered bytes are the start of the next head.
- ``S_BODY``: a request is in flight and its body is still arriving; buffered bytes are body.
- ``S_BUSY``: a request is in flight and its body is complete; buffered bytes are pipelined.
- ``S_SWITCHED``: a 101 went out and another role drives the stream; nothing here reads again.
- ``S_DEAD``: framing can no longer be trusted (a refused head, a failed body); nothing more is
  read, the connection closes once the answer is out.

Invariants: the handler runs only in S_BODY/S_BUSY (and on in S_SWITCHED, where it no longer
owns the connection); ``_discarding`` only in S_BODY after the handler finished; reading is held
with PAUSE_QUEUE only in S_BUSY and with PAUSE_BACKLOG only by the body stream; ``_keep_alive``
is written only in this file and never turns back on.
"""
cimport cython

from cyserve._core.http.body cimport BodyStream
from cyserve._core.http.eager cimport start_handler
from cyserve._core.http.framing cimport BodyReader, start_body
from cyserve._core.http.head cimport FRAMING_CHUNKED, FRAMING_LENGTH, FRAMING_NONE, Head
from cyserve._core.http.parser cimport parse_request
from cyserve._core.http.proxyproto cimport V2_HEADER_BYTES, proxy_first
from cyserve._core.http.response cimport R_NONE, R_STREAMING, ResponseWriter, response_writer
from cyserve._core.http.scanner cimport HeadScanner
from cyserve._core.http.serialise cimport CONN_CLOSE, CONN_KEEP_ALIVE, CONN_NONE
from cyserve._core.http.state cimport MIN_READ_BYTES, ServerState
from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.io.deadline cimport SLOT_INPUT, SLOT_OUTPUT, SLOT_ROLE
from cyserve._core.io.readgate cimport PAUSE_QUEUE
from cyserve._core.io.stream cimport RoleHooks, SHUTDOWN_GRACEFUL, Stream, new_stream
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import asyncio
import logging
from http import HTTPStatus

from cyserve.errors import Disconnected, ProtocolError

cdef extern from "Python.h":
    object PyContext_CopyCurrent()

cdef bytes _CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

cdef object _log = logging.getLogger("cyserve.server")
cdef object _CancelledError = asyncio.CancelledError


# ---------------------------------------------------------------- the stream's calls (RoleHooks)
cdef inline object _peer_host(object peername):
    # The host a connection is counted (and trusted) under; Unix socket peers are all "unix:".
    if type(peername) is tuple:
        return (<tuple>peername)[0]
    return "unix:"


cdef int _made(object role) except -1:
    cdef ServerRole self = <ServerRole>role
    cdef ServerState state = self._state
    if state.shutting_down:
        self.stream.close()
        return 0
    self.stream.set_write_timeout(state.write_s)
    # Counted under the peer the role sees: after a PROXY header, the client the proxy saw.
    if (state.limit_connections_per_ip > 0
            and not state.admit(self.stream, _peer_host(self.stream.peername))):
        # RFC 9110 §15.6.4: 503 for a temporary overload; this peer has its share already.
        self._refuse(503, "too many connections from this address")
        return 0
    self.stream.expect_input(K_FIRST, state.first_request_s, False)
    return 0


cdef int _data(object role) except -1:
    return (<ServerRole>role)._process()


cdef int _eof(object role) except -1:
    # A response in progress is still written: the client may only have half-closed (§9.6).
    cdef ServerRole self = <ServerRole>role
    if self._phase == S_BODY:
        self._body_failed(ProtocolError("the request body ended before its declared length", 400))
    return 1 if self._handler_running else 0


cdef int _lost(object role, object exc) except -1:
    cdef ServerRole self = <ServerRole>role
    if self._body is not None:
        self._body.fail(Disconnected("the client closed the connection"))
    if self._observer is not None and self._response.state != R_NONE:
        self._report()   # a response cut short: what was sent of it
    return 0


cdef int _expired(object role, int slot, int kind) except -1:
    cdef ServerRole self = <ServerRole>role
    cdef ServerState state = self._state
    if self.stream.closing:
        return 0
    if slot == SLOT_INPUT:
        if kind == K_HEAD:
            # RFC 9110 §15.5.9: 408 when the client is too slow to send a complete request.
            self._reject(ProtocolError("the request head was not received in time", 408))
        elif kind == K_BODY:
            self._body_failed(ProtocolError("the request body stalled", 408))
        elif self._phase == S_IDLE and not self._handler_running:
            self.stream.close()  # idle before a first request, or between requests
    elif slot == SLOT_OUTPUT:
        # The client has read nothing of what is queued for it for write_s: give up on it.  The
        # handler's next write (or the drain it awaits) raises Disconnected, so its producer stops.
        _log.info("dropping %s: no write progress for %.1fs", self.stream.peername, state.write_s)
        self._keep_alive = False
        self.stream.abort()
    elif slot == SLOT_ROLE and self._handler_running and self._phase != S_SWITCHED:
        # Timeouts.handler_s: 503 while nothing was sent (RFC 9110 §15.6.4), else the half-sent
        # response can't be finished and the connection drops.
        self._keep_alive = False
        if self._response.state == R_NONE:
            self._respond_status(503, f"the request took longer than {state.handler_s:g}s")
        else:
            self.stream.abort()
        if self._task is not None:
            self._task.cancel()
    return 0


cdef int _shutdown(object role, int mode) except -1:
    cdef ServerRole self = <ServerRole>role
    if mode == SHUTDOWN_GRACEFUL:
        # No more keep-alive: close now when idle, else after the current response.
        self._keep_alive = False
        if (self._phase == S_IDLE and not self._handler_running
                and self.stream.buffer.size() == 0):
            self.stream.close()
    elif self._task is not None:
        self._task.cancel()
    return 0


cdef RoleHooks _HOOKS
_HOOKS.made = _made
_HOOKS.data = _data
_HOOKS.eof = _eof
_HOOKS.lost = _lost
_HOOKS.expired = _expired
_HOOKS.shutdown = _shutdown


cdef int _want_body(object owner) except -1:
    # RFC 9110 §10.1.1: send 100 Continue only once the handler asks for the body, and only while
    # no final response has started.
    cdef ServerRole self = <ServerRole>owner
    if self._continue_owed and self._response.state == R_NONE and not self.stream.closing:
        self._continue_owed = False
        self.stream.outbox.send(_CONTINUE)
    return 0


cdef inline double _now() noexcept:
    """Seconds on the monotonic clock, to the nanosecond: response times for the observer.
    Not ``loop.time()``: uvloop's is libuv's millisecond clock, read once per loop turn, which
    makes every fast response last 0 or 1 ms."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


@cython.final
cdef class ServerRole:
    """One HTTP/1.1 server connection's requests and responses (see server.pxd)."""

    def __init__(self):
        raise TypeError("ServerRole is made by server_connection()")

    # ---------------------------------------------------------------- requests
    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int _process(self) except -1:
        cdef Stream stream = self.stream
        cdef ReceiveBuffer buf = stream.buffer
        cdef Py_ssize_t n, end, skip
        cdef const unsigned char* data
        cdef Head head
        while not stream.closing:
            if self._phase == S_BODY:
                if buf.size() == 0 or not self._feed_body():
                    break
                continue
            if self._phase == S_BUSY:
                if buf.size() >= self._state.max_pipeline_bytes:
                    stream.hold_reading(PAUSE_QUEUE)
                break
            if self._phase != S_IDLE:
                if self._phase == S_DEAD:
                    # Nothing more is read as HTTP; the lingering close drops it once the handler
                    # is done.  Until then the client is held back, not the buffer filled.
                    stream.hold_reading(PAUSE_QUEUE)
                break
            n = buf.size()
            if n == 0:
                break
            data = buf.head()
            # RFC 9112 §2.2: a server SHOULD ignore empty lines received before a request line.
            skip = 0
            while skip + 1 < n and data[skip] == 13 and data[skip + 1] == 10:
                skip += 2
            if skip:
                buf.consume(skip)
                continue
            try:
                end = self._scanner.find_end(data, n)
                if end < 0:
                    if stream.peer_eof:
                        stream.close()   # the client sent FIN: this head will never be whole
                        break
                    # Incomplete: the head deadline runs from this first pass that saw its bytes
                    # (slowloris); a head that arrives whole never touches the clock.
                    if stream.input_kind != K_HEAD:
                        stream.expect_input(K_HEAD, self._state.head_s, False)
                    break
                raw = buf.take(end)
                buf.consume(end)
                self._scanner.reset()
                head = parse_request(raw, self._state.limits)
            except ProtocolError as exc:
                self._reject(exc)
                break
            self._start_request(head)
        return 0

    cdef int _start_request(self, Head head) except -1:
        cdef Stream stream = self.stream
        cdef ReceiveBuffer buf = stream.buffer
        cdef ServerState state = self._state
        cdef object body = b""
        self._requests += 1
        state.requests_total += 1
        self._head = head
        # Both tests, not stores: the common case (no proxy headers, no observer) touches no
        # reference count.  ``_observer`` is None here unless a response went unreported,
        # which only a lost connection leaves behind.
        if self.forwarded is not None:
            self.forwarded = None
        if state.observer is not None:
            self._observer = state.observer
            self._started = _now()
        self._http10 = head.version == 10
        self._keep_alive = (self._keep_alive and head.keep_alive and not state.shutting_down
                            and (state.max_keepalive_requests <= 0
                                 or self._requests < state.max_keepalive_requests))
        self._response.reset(self._http10, head.method == "HEAD")
        self._continue_owed = False
        self._phase = S_BUSY
        if state.limit_concurrency > 0 and (len(state.connections) > state.limit_concurrency
                                            or state.requests_active >= state.limit_concurrency):
            # uvicorn's --limit-concurrency, answered from here without running the app (RFC
            # 9110 §15.6.4).  Deliberately unlike uvicorn, this connection itself is not counted
            # against the limit: there, a limit of 1 refuses every request.
            self._refuse(503, "the server is at its concurrency limit")
            return 0
        if head.framing != FRAMING_NONE:
            if head.framing == FRAMING_LENGTH and head.content_length > state.max_body_bytes:
                # RFC 9110 §15.5.14: refuse at once, before any of the body is read.
                self._reject(ProtocolError(
                    f"request body of {head.content_length} bytes exceeds the "
                    f"{state.max_body_bytes}-byte limit", 413))
                return 0
            owed = head.expect_continue and buf.size() == 0
            try:
                body = start_body(stream, head.framing, head.content_length, state.max_body_bytes,
                                  state.max_trailer_bytes, state.body_high, state.body_low, self,
                                  _want_body)
            except ProtocolError as exc:
                self._reject(exc)   # the buffered chunked body was malformed or too large
                return 0
            if type(body) is not bytes:
                self._reader = <BodyReader>body
                self._body = self._reader.sink
                body = self._body
                self._continue_owed = owed
                self._phase = S_BODY
        if self._phase == S_BODY:
            stream.expect_input(K_BODY, state.body_idle_s, True)
        elif stream.input_kind == K_HEAD:
            stream.expect_input(K_NONE, 0, False)
        # An idle watch (K_FIRST, K_KEEPALIVE) runs on: one that fires while a request is in
        # flight is ignored, and the request's end arms it afresh (no clock work per request).
        self._dispatch(head, body)
        return 0

    cdef int _feed_body(self) except -1:
        """Move buffered body bytes on (into the body stream, or nowhere while discarding); 1
        when the body completed."""
        try:
            if not self._reader.feed(self.stream.buffer):
                return 0
        except ProtocolError as exc:
            self._body_failed(exc)
            return 0
        self._reader = None
        if self._body is not None:
            self._body.feed_eof()
        self._phase = S_BUSY
        self.stream.expect_input(K_NONE, 0, False)
        if self._discarding:
            self._discarding = False
            self._next_request()
        return 1

    cdef int _body_failed(self, object exc) except -1:
        """The body can't be read to its end: fail the stream; the connection will close."""
        self._keep_alive = False
        self._phase = S_DEAD
        self._reader = None
        self.stream.expect_input(K_NONE, 0, False)
        if self._body is not None:
            self._body.fail(exc)
        if not self._handler_running:
            if self._response.state == R_NONE and self._head is not None and not self._discarding:
                self._reject(exc)
            else:
                self._shut()
        return 0

    # ---------------------------------------------------------------- the handler
    cdef int _dispatch(self, Head head, object body) except -1:
        """Run the handler's first step now, in its Task (eager.pxd); a handler that suspends is
        tracked through that Task, one that ended is done now."""
        self._handler_running = True
        self._state.requests_active += 1
        # Each request runs in its own copy of the context (contextvars set by one request never
        # leak into the next, nor into the loop's callbacks).
        ctx = PyContext_CopyCurrent()
        try:
            task = start_handler(self._state.loop, self._state.entry(self, head, body), ctx)
        except BaseException as exc:
            self._handler_failed(exc)
            return 0
        if task is None:
            self._handler_done()
            return 0
        self._task = task
        task.add_done_callback(self._on_task_done)
        if self._state.handler_s > 0 and self._phase != S_SWITCHED:
            self.stream.deadline.set(SLOT_ROLE, self._state.handler_s)
        return 0

    def _on_task_done(self, task):
        self._task = None
        if self._phase != S_SWITCHED:
            self.stream.deadline.clear(SLOT_ROLE)
        if task.cancelled():
            self._handler_failed(_CancelledError())
        elif task.exception() is not None:
            self._handler_failed(task.exception())
        else:
            self._handler_done()
        if not self.stream.closing:
            self.stream.process()

    cdef int _handler_done(self) except -1:
        self._handler_running = False
        self._state.requests_active -= 1
        if self._phase == S_SWITCHED or self.stream.closing:
            return 0  # another role owns the connection, or it is going away
        if self._response.state == R_NONE:
            _log.error("handler for %s %s returned without a response",
                       self._head.method, self._head.target)
            self._keep_alive = False
            self._respond_status(500, None)
        elif self._response.state == R_STREAMING:
            self._response.end(None)
            if self._observer is not None:
                self._report()
        self._finish_request()
        return 0

    cdef int _handler_failed(self, object exc) except -1:
        self._handler_running = False
        self._state.requests_active -= 1
        if self._phase == S_SWITCHED:
            if not isinstance(exc, (_CancelledError, Disconnected)):
                _log.error("unhandled error in the handler of a switched connection", exc_info=exc)
            return 0
        if self.stream.closing:
            return 0  # the client left: whatever the handler was doing no longer matters
        if isinstance(exc, ProtocolError) and self._response.state == R_NONE:
            self._reject(exc)
            return 0
        if not isinstance(exc, (_CancelledError, Disconnected)):
            _log.error("unhandled error in handler for %s %s", self._head.method, self._head.target,
                       exc_info=exc)
        if self._response.state == R_NONE:
            self._keep_alive = False
            self._respond_status(500, None)
            self._finish_request()
        else:
            # The head is out and the body is cut short: framing can't be trusted, so close.
            self._keep_alive = False
            if self._observer is not None:
                self._report()
            self._shut()
        return 0

    cdef int _finish_request(self) except -1:
        if self._response.close_after:
            self._keep_alive = False
        if self._phase == S_BODY:
            # The handler did not read the whole body.  Drain it (bounded by the body limit) only
            # when the response kept the connection; otherwise close, lingering.
            if not self._keep_alive:
                self._shut()
                return 0
            self._discarding = True
            self._reader.sink = None
            if self._body is not None:
                self._body.detach()
                self._body = None
            return 0
        if self._phase == S_DEAD:
            self._shut()
            return 0
        self._next_request()
        return 0

    cdef int _next_request(self) except -1:
        cdef Stream stream = self.stream
        if self._body is not None:
            self._body.detach()   # an unread rest no longer holds the connection's reading
        self._head = None
        self._body = None
        self._reader = None
        # Requests a half-closed client pipelined before its FIN are still answered, in order.
        if (not self._keep_alive or self._state.shutting_down
                or (stream.peer_eof and stream.buffer.size() == 0)):
            self._shut()
            return 0
        self._response.reset(False, False)   # a refused next head is answered too
        self._phase = S_IDLE
        if stream.gate.reasons & PAUSE_QUEUE:
            stream.release_reading(PAUSE_QUEUE)
        if stream.buffer.size() == 0:
            stream.expect_input(K_KEEPALIVE, self._state.keepalive_s, False)
        return 0

    # ---------------------------------------------------------------- errors and closing
    cdef int _reject(self, object exc) except -1:
        """Answer a ProtocolError with its status and ``Connection: close``, then close."""
        return self._refuse(getattr(exc, "status", 400), str(exc))

    cdef int _refuse(self, int status, str detail) except -1:
        """Answer ``status`` with ``Connection: close`` (unless a response started), then close:
        framing can't be trusted any more, or the server will not serve this connection."""
        cdef ServerState state = self._state
        self._keep_alive = False
        self._phase = S_DEAD
        if self._response.state == R_NONE and not self.stream.closing:
            if self._head is None:
                # An answer before any head (400, 408, 431, a per-address 503) concerns no
                # request: nothing forwarded applies.  It is a response all the same: observed
                # with head None, timed from now.
                self.forwarded = None
                if state.observer is not None:
                    self._observer = state.observer
                    self._started = _now()
            self._respond_status(status, detail)
        self._shut()
        return 0

    cdef int _report(self) except -1:
        """Tell the observer of this response, once (``_observer`` is set only until then)."""
        cdef object observer = self._observer
        self._observer = None
        try:
            observer.response_done(self, self._head, self._response.status, self._response.sent,
                                   _now() - self._started)
        except Exception as exc:
            # An access log or a metrics store that fails must not fail the connection.
            _log.error("the response observer %r failed", observer, exc_info=exc)
        return 0

    cdef int _respond_status(self, int status, str detail) except -1:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        text = f"{status} {phrase}: {detail}\n" if detail else f"{status} {phrase}\n"
        self._keep_alive = False
        self.respond(status, None, text.encode("utf-8", "replace"), "text/plain; charset=utf-8")
        return 0

    cdef int _shut(self) except -1:
        """Close the connection; linger (RFC 9112 §9.6) when the client may still be sending, so
        the answer just written is not wiped by its kernel's reset."""
        cdef Stream stream = self.stream
        if self._phase == S_DEAD or self._reader is not None or stream.buffer.size():
            stream.close_lingering(self._state.max_linger_bytes, self._state.linger_s)
        else:
            stream.close()
        return 0

    cdef int _conn_mode(self) except -1:
        # A body the handler left unread keeps the connection only when it is a short
        # Content-Length body we can drain; an unsent 100 Continue means the client may never
        # send it (RFC 9110 §10.1.1), so close.
        if self._phase == S_BODY and (self._continue_owed or self._reader.framing == FRAMING_CHUNKED
                                      or self._reader.remaining > self._state.body_high):
            self._keep_alive = False
        if (self._phase == S_DEAD or self._state.shutting_down
                or (self.stream.peer_eof and self.stream.buffer.size() == 0)):
            # The last answer to a half-closed client says the connection ends with it.
            self._keep_alive = False
        if not self._keep_alive:
            return CONN_CLOSE
        if self._http10:
            return CONN_KEEP_ALIVE
        return CONN_NONE

    cdef int _check_open(self) except -1:
        if self.stream.closing:
            raise Disconnected("the connection is closed")
        return 0
    # ---------------------------------------------------------------- the response API (the App's;
    # documented in server.pyi)
    cpdef respond(self, int status, object fields, object body, object content_type=None):
        if self.stream.closing:
            raise Disconnected("the connection is closed")
        self._response.respond(status, fields, body, content_type, self._conn_mode())
        if self._observer is not None:
            self._report()

    def start_stream(self, int status, fields=None, content_type=None, long long content_length=-1):
        self._check_open()
        self._response.start(status, fields, content_type, content_length, self._conn_mode())

    def write(self, data):
        return self._response.write(data)

    def end_stream(self, trailers=None):
        # The writer refuses bad trailers before it changes anything: the response is then still
        # streaming and unreported, and the handler may end it again.
        self._response.end(trailers)
        if self._observer is not None:
            self._report()

    def drain(self):
        return self.stream.outbox.drain()

    def upgrade(self, str protocol not None, fields, take_over):
        # RFC 9110 §7.8: only to a protocol the request offered, and HTTP ends with the 101.
        cdef Stream stream = self.stream
        if self._head is None or not self._head.upgrade:
            raise RuntimeError("upgrade() needs a request that asked for it (Connection: upgrade "
                               "and an Upgrade field, RFC 9110 §7.8)")
        if self._phase != S_BUSY:
            raise RuntimeError("upgrade() needs the request's body read in full first")
        self._check_open()
        self._response.switching(protocol, fields)
        if self._observer is not None:
            self._report()
        self._phase = S_SWITCHED
        self._keep_alive = False
        take_over(stream)
        if stream.role is self:
            # HTTP cannot resume after a 101: nobody would read what the client sends next.
            stream.close()
            raise RuntimeError("take_over() attached no role to the stream")

    @property
    def response_started(self) -> bool:
        return self._response.state != R_NONE

    @property
    def trailers_allowed(self) -> bool:
        return self._response.trailers_allowed()

    # The connection's own facts (peer, transport, disconnects, reading) are ``conn.stream``'s.
    @property
    def requests_served(self) -> int:
        return self._requests


def server_connection(ServerState state not None):
    """A new server connection for the loop: a ``StreamProtocol`` driven by a ``ServerRole``
    (the listener's protocol factory)."""
    cdef Stream stream = new_stream(state.loop, state.recv_initial, state.recv_max,
                                    MIN_READ_BYTES, state.write_high, state.write_low, state)
    cdef ServerRole role = ServerRole.__new__(ServerRole)
    role.stream = stream
    role._state = state
    role._scanner = HeadScanner(state.limits)
    role._response = response_writer(stream.outbox, state.server_name, state.date_header)
    role._phase = S_IDLE
    role._keep_alive = True
    if state.proxy_protocol:
        # The PROXY header comes first (from trusted peers), within the head deadline; a v2
        # header must leave the buffer room for a read.
        proxy_first(stream, state.proxy_trusted,
                    state.head_s if state.head_s > 0 else state.first_request_s,
                    min(V2_HEADER_BYTES + 65535, state.recv_max - MIN_READ_BYTES), role, &_HOOKS)
    else:
        stream.attach(role, &_HOOKS)
    return stream
