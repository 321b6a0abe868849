# cython: language_level=3
"""The HTTP/1.1 client role: the exchange, its end, failure and deadlines (see client.pxd).

Phases (``_phase``), one exchange at a time (no pipelining):

- ``P_IDLE``: no exchange.  Any byte arriving now is unsolicited: the connection is closed
  (RFC 9112 §9.3: nothing may precede the response to the next request).
- ``P_HEAD``: a request was started; bytes are the response head (interim 1xx heads are parsed
  and skipped, RFC 9110 §15.2, at most ``max_interim_responses`` of them).
- ``P_BODY``: the head is parsed; bytes are its body, fed to a ``BodyStream``.
- ``P_DONE``: the response is complete; the request body may still be open (early response).
- ``P_SWITCHED``: a 101 answered a request that asked to upgrade; the bytes after it belong to
  the next role, which the caller attaches to the stream.
- ``P_DEAD``: failed or closing; never reused.

Invariants: the exchange ends (the connection goes back to its listener, the pool) only when the
request was sent in full *and* the response was received in full with keep-alive and no byte
beyond its framing; otherwise the connection closes.  ``_exc``, once set, is final: the
connection is aborted and every later call raises it.
"""
cimport cython
from cpython.bytes cimport PyBytes_GET_SIZE

from cyserve._core.http.body cimport BodyStream
from cyserve._core.http.framing cimport BodyReader, BodyWriter, body_writer, start_body
from cyserve._core.http.head cimport (
    FRAMING_CHUNKED, FRAMING_CLOSE, FRAMING_LENGTH, FRAMING_NONE, Head,
)
from cyserve._core.http.parser cimport parse_response
from cyserve._core.http.scanner cimport HeadScanner
from cyserve._core.http.serialise cimport (
    BODY_CHUNKED, BODY_LENGTH, BODY_NONE, COALESCE_BODY_BYTES, HeadWriter,
)
from cyserve._core.http.state cimport ClientState
from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.io.deadline cimport SLOT_INPUT, SLOT_OUTPUT, SLOT_ROLE, monotonic
from cyserve._core.io.stream cimport RoleHooks, Stream, new_stream

from cyserve.errors import (
    ProtocolError, ReadError, ReadTimeout, RemoteProtocolError, TotalTimeout, WriteError,
    WriteTimeout, again,
)


# ---------------------------------------------------------------- the stream's calls (RoleHooks)
cdef int _made(object role) except -1:
    return 0


cdef int _data(object role) except -1:
    cdef ClientRole self = <ClientRole>role
    cdef ReceiveBuffer buf = self.stream.buffer
    self.response_bytes += buf.size() - self._unread
    self._process()
    self._unread = buf.size()
    return 0


cdef int _eof(object role) except -1:
    cdef ClientRole self = <ClientRole>role
    if self._phase == P_BODY and self._reader.framing == FRAMING_CLOSE:
        # RFC 9112 §6.3 item 8: the close is what ends this body.
        self._body_done()
    elif self._phase == P_HEAD or self._phase == P_BODY:
        self._fail(self._closed_error(None))
    elif self._phase == P_IDLE:
        self._keep_alive = False
    return 0


cdef int _lost(object role, object exc) except -1:
    cdef ClientRole self = <ClientRole>role
    if self._phase == P_BODY and exc is None and self._reader.framing == FRAMING_CLOSE:
        self._body_done()   # a TLS peer that closed without close_notify ends the body too
    if self._phase == P_HEAD or self._phase == P_BODY:
        self._fail(self._closed_error(exc))
    elif self._req_open:
        self._fail(WriteError(f"the connection was lost while sending the request: {exc}"
                              if exc else "the server closed the connection while the request "
                              "was being sent"))
    listener = self.listener
    if listener is not None:
        listener.connection_closed(self)
    return 0


cdef int _expired(object role, int slot, int kind) except -1:
    cdef ClientRole self = <ClientRole>role
    if self.stream.closing:
        return 0
    if slot == SLOT_ROLE:
        self._fail(TotalTimeout("the request took longer than its total timeout"))
    elif slot == SLOT_OUTPUT:
        self._fail(WriteTimeout(f"the server accepted no request bytes for {self._write_s:g}s"))
    elif kind == K_READ:
        self._fail(ReadTimeout(f"no response bytes arrived for {self._read_s:g}s"))
    elif kind == K_IDLE:
        # Keep-alive expiry of a pooled connection (closing is never an error here).
        self._phase = P_DEAD
        self._shut(False)
    return 0


cdef int _shutdown(object role, int mode) except -1:
    return 0   # client connections belong to no server's registry


cdef RoleHooks _HOOKS
_HOOKS.made = _made
_HOOKS.data = _data
_HOOKS.eof = _eof
_HOOKS.lost = _lost
_HOOKS.expired = _expired
_HOOKS.shutdown = _shutdown


@cython.final
cdef class ClientRole:
    """One client connection.  ``start`` / ``send_body`` / ``end_body`` send a request; the
    future ``start`` returns resolves with ``(head, body)`` (``body`` is ``bytes`` when the whole
    body was already here, else a ``BodyStream``) or ``None`` after a failure (see ``error``)."""

    def __init__(self):
        raise TypeError("ClientRole is made by client_connection()")

    # ---------------------------------------------------------------- responses
    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int _process(self) except -1:
        cdef Stream stream = self.stream
        cdef ReceiveBuffer buf = stream.buffer
        cdef Py_ssize_t n, end
        cdef Head head
        cdef bytes raw
        while not stream.closing:
            if self._phase == P_HEAD:
                n = buf.size()
                if n == 0:
                    return 0
                try:
                    end = self._scanner.find_end(buf.head(), n)
                    if end < 0:
                        return 0
                    raw = buf.take(end)
                    buf.consume(end)
                    self._scanner.reset()
                    head = parse_response(raw, self._state.limits, self._head_request)
                except ProtocolError as exc:
                    self._fail(RemoteProtocolError(f"malformed response head: {exc}"))
                    return 0
                if head.status < 200:
                    if head.status == 101:
                        if self._upgrade:
                            # RFC 9110 §15.2.2: HTTP ends with this head; what follows is the
                            # next protocol's, left in the buffer for the role the caller attaches.
                            self._phase = P_SWITCHED
                            self._keep_alive = False
                            self._head = head
                            self._resp_body = None
                            stream.expect_input(K_NONE, 0, False)
                            stream.deadline.clear(SLOT_ROLE)
                            self._wake_head()
                            return 0
                        self._fail(RemoteProtocolError("unexpected 101 Switching Protocols: "
                                                       "the request did not ask to upgrade"))
                        return 0
                    # An interim response (100, 103...): RFC 9110 §15.2, skip it -- a bounded
                    # number of times, so a server dripping them cannot hold the request forever.
                    self._interim += 1
                    if self._interim > self._state.max_interim_responses:
                        self._fail(RemoteProtocolError(
                            f"more than {self._state.max_interim_responses} interim (1xx) "
                            "responses before the final one (RFC 9110 §15.2)"))
                        return 0
                    continue
                self._on_head(head)
            elif self._phase == P_BODY:
                if buf.size() == 0 or not self._feed_body():
                    return 0
                self._body_done()
            elif self._phase == P_SWITCHED:
                return 0
            else:
                if buf.size():
                    # Bytes past the response's framing, or with no request outstanding: this
                    # connection's framing can't be trusted any more (RFC 9112 §9.3).
                    self._keep_alive = False
                    if self._phase == P_IDLE:
                        self._phase = P_DEAD
                        self._shut(False)
                return 0
        return 0

    cdef int _on_head(self, Head head) except -1:
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
        else:
            try:
                body = start_body(self.stream, framing, head.content_length, -1,
                                  self._state.max_trailer_bytes, self._state.read_high,
                                  self._state.read_low, None, NULL)
            except ProtocolError as exc:
                self._fail(RemoteProtocolError(f"malformed chunked response body: {exc}"))
                return 0
            if type(body) is bytes:
                self._resp_body = body
            else:
                self._reader = <BodyReader>body
                self._body = self._reader.sink
                self._resp_body = self._body
                self._phase = P_BODY
        # Wake the caller before the exchange may end: ending it hands the connection on.
        self._wake_head()
        if self._phase != P_BODY:
            self._body_done()
        return 0

    cdef int _feed_body(self) except -1:
        """Buffered bytes into the body stream: 1 once the body is complete, else 0 (also after
        a failure)."""
        try:
            return self._reader.feed(self.stream.buffer)
        except ProtocolError as exc:
            self._fail(RemoteProtocolError(f"malformed chunked response body: {exc}"))
            return 0

    cdef int _body_done(self) except -1:
        self._reader = None
        if self._body is not None:
            self._body.feed_eof()
            self._body.detach()   # the exchange is over: its reader no longer holds reading
        self._phase = P_DONE
        self.stream.expect_input(K_NONE, 0, False)
        self._maybe_release()
        return 0

    cdef int _wake_head(self) except -1:
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._head, self._resp_body))
        # An uploader stuck behind a full send buffer looks again: a server that answered early
        # may never read the rest (the uploader then stops, see ``stop_body``).
        self.stream.outbox.wake()
        return 0

    # ---------------------------------------------------------------- the end of an exchange
    cdef int _request_done(self, bint complete) except -1:
        # The request left: a complete one starts the read deadline (the server owes bytes now).
        if complete and (self._phase == P_HEAD or self._phase == P_BODY) and self._read_s > 0:
            self.stream.expect_input(K_READ, self._read_s, True)
        self._maybe_release()
        return 0

    cdef int _maybe_release(self) except -1:
        cdef Stream stream = self.stream
        if self._phase != P_DONE or self._req_open:
            return 0
        stream.deadline.clear(SLOT_ROLE)
        self._head_waiter = None
        if (self._keep_alive and not stream.peer_eof and not stream.closing
                and stream.buffer.size() == 0):
            self._phase = P_IDLE
            self._head = None
            self._body = None
            self._resp_body = None
            self.idle_since = monotonic()
            stream.expect_input(K_IDLE, self._state.keepalive_s, False)
            if self.listener is not None:
                self.listener.connection_released(self)
        else:
            self._phase = P_DEAD
            self._body = None
            self._shut(False)
        return 0

    # ---------------------------------------------------------------- failure
    cdef int _fail(self, object exc) except -1:
        """Final: store ``exc``, wake every waiter, abort the transport."""
        if self._exc is None:
            self._exc = exc
        self._phase = P_DEAD
        self._req_open = False
        self._keep_alive = False
        if self._body is not None and not self._body.eof:
            self._body.fail(exc)
        waiter = self._head_waiter
        self._head_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        # A drain() waiter (an uploader) raises the connection's error.
        self.stream.outbox.lost(self._exc)
        self._shut(True)
        return 0

    cdef int _shut(self, bint abort) except -1:
        """Close (or abort) the transport once, and tell the listener now: the pool frees the slot
        at once instead of when the loop reports the connection lost."""
        cdef Stream stream = self.stream
        if stream.closing:
            return 0
        if abort:
            stream.abort()
        else:
            stream.close()
        if self.listener is not None:
            self.listener.connection_closed(self)
        return 0

    cdef object _closed_error(self, object exc):
        if exc is not None:
            return ReadError(f"the connection was lost while receiving the response: {exc}")
        if self._phase == P_HEAD:
            if self.response_bytes == 0:
                return RemoteProtocolError("the server closed the connection without sending a response")
            return RemoteProtocolError("the server closed the connection inside a response head")
        return RemoteProtocolError("the server closed the connection before the response body "
                                   "was complete (RFC 9112 §8)")

    # ---------------------------------------------------------------- the exchange (the Python face)
    def start(self, str method, str target, fields, long long content_length=-1,
              bint chunked=False, bytes body=None, bint close=False, bint head_request=False,
              double read_s=0, double write_s=0, double total_s=0, bint upgrade=False):
        cdef Stream stream = self.stream
        cdef int framing
        cdef bytes head
        if self._exc is not None:
            raise again(self._exc)
        if self._phase != P_IDLE or stream.closing:
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
        # ValueError for a bad method, target or field before any state changes.
        head = self._heads.request_head(method, target, fields, framing, content_length, close, body,
                                        upgrade)
        self._req_close = close or self._heads.user_close
        self.exchanges += 1
        self.response_bytes = 0
        self._interim = 0
        self._keep_alive = not self._req_close
        self._head_request = head_request
        self._connect = method == "CONNECT"
        self._upgrade = upgrade
        self._head = None
        self._resp_body = None
        self._body = None
        self._scanner.reset()
        self._read_s = read_s
        self._write_s = write_s
        self._phase = P_HEAD
        stream.set_write_timeout(write_s)
        stream.deadline.set(SLOT_ROLE, total_s)
        if body is not None:
            # The whole body is here: it leaves now (inside the head's write when small).
            self._req_open = False
            stream.outbox.send(head)
            if PyBytes_GET_SIZE(body) > COALESCE_BODY_BYTES:
                stream.outbox.send(body)
        else:
            self._req_open = framing == BODY_CHUNKED or (framing == BODY_LENGTH and content_length > 0)
            self._request.start(framing, content_length if framing == BODY_LENGTH else -1, False)
            stream.outbox.send(head)
        if read_s > 0 and not self._req_open:
            stream.expect_input(K_READ, read_s, True)
        else:
            stream.expect_input(K_NONE, 0, False)
        waiter = self._state.loop.create_future()
        self._head_waiter = waiter
        return waiter

    async def send_body(self, data):
        if self._exc is not None:
            raise again(self._exc)
        if not self._req_open:
            raise RuntimeError("no request body is open on this connection")
        if type(data) is not bytes:
            data = bytes(data)
        if PyBytes_GET_SIZE(data) == 0:
            return
        try:
            self._request.write(data)
        except ValueError:
            self._fail(WriteError("request body longer than its Content-Length"))
            raise
        if self.stream.outbox.paused:
            await self.drain()

    def end_body(self):
        if self._exc is not None:
            raise again(self._exc)
        if not self._req_open:
            return
        if self._request.finish():
            missing = self._request.remaining
            self._fail(WriteError("request body shorter than its Content-Length"))
            raise ValueError(f"the request body ended {missing} bytes short of its Content-Length")
        self._req_open = False
        self._request_done(True)

    def stop_body(self):
        # RFC 9110 §15: the client may stop once a final response arrived; the request's framing
        # is unfinished, so the connection closes once that response has been received.
        if not self._req_open:
            return
        self._req_open = False
        self._keep_alive = False
        self._request_done(False)

    async def drain(self):
        if self._exc is not None:
            raise again(self._exc)
        if not self.stream.outbox.paused or self.stream.closing:
            return
        await self.stream.outbox.drain()
        if self._exc is not None:
            raise again(self._exc)

    def abort(self, exc=None):
        self._fail(exc if exc is not None else ReadError("the exchange was abandoned"))

    def close(self):
        if not self.stream.closing:
            self._phase = P_DEAD
            self._shut(False)

    def set_transport(self, transport):
        self.stream.set_transport(transport)

    # ---------------------------------------------------------------- connection facts
    @property
    def transport(self):
        return self.stream.transport

    @property
    def error(self):
        """Why the connection failed, or None."""
        return self._exc

    @property
    def closed(self) -> bool:
        """The loop reported the connection lost."""
        return self.stream.lost

    @property
    def is_reusable(self) -> bool:
        """Idle, open, the server has not half-closed, nothing unsolicited arrived."""
        return (self._phase == P_IDLE and not self.stream.closing and not self.stream.peer_eof
                and self._exc is None and self.stream.buffer.size() == 0)

    @property
    def request_open(self) -> bool:
        return self._req_open

    @property
    def write_paused(self) -> bool:
        return self.stream.outbox.paused

    @property
    def reading_paused(self) -> bool:
        return self.stream.gate.paused

    @property
    def response_complete(self) -> bool:
        return self._phase == P_DONE or self._phase == P_IDLE


def client_connection(ClientState state not None, origin=None):
    """A new client connection for ``loop.create_connection``: a ``StreamProtocol`` driven by a
    ``ClientRole`` (``stream.role``); ``origin`` is the pool key it serves."""
    cdef Stream stream = new_stream(state.loop, state.recv_initial, state.recv_max,
                                    state.read_chunk, state.write_high, state.write_low, None)
    cdef ClientRole role = ClientRole.__new__(ClientRole)
    role.stream = stream
    role._state = state
    role.origin = origin
    role._scanner = HeadScanner(state.limits, True)
    role._heads = HeadWriter(None)
    role._request = body_writer(stream.outbox)
    role._phase = P_IDLE
    role._keep_alive = True
    stream.attach(role, &_HOOKS)
    return stream
