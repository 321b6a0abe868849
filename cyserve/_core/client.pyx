# cython: language_level=3
"""HTTP/1.1 client connection: the exchange, its end, failure, deadlines (one lazy timer).

The writing half (``reqsender.RequestSender``) and the reading half (``respreader.ResponseReader``)
are the bases of ``HTTPClientCore``; here the two meet.  Response phases (``_resp_phase``), one
exchange at a time (no pipelining):

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
from cyserve._core.http.parser cimport FRAMING_CLOSE
from cyserve._core.respreader cimport P_BODY, P_DEAD, P_DONE, P_HEAD, P_IDLE
from cyserve._core.timer cimport monotonic as _now

from cyserve.errors import (
    ReadError, ReadTimeout, RemoteProtocolError, TotalTimeout, WriteError, WriteTimeout,
)
# Re-exported: the public names of the client core stay importable from here.
from cyserve._core.clientstate import ClientState
from cyserve._core.http.serialise import serialise_request


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


cdef class HTTPClientCore(ResponseReader):
    """One client connection.  ``start`` / ``send_body`` / ``end_body`` send a request; the
    future ``start`` returns resolves with ``(head, body)`` (``body`` is ``bytes`` when the whole
    body was already here, else a ``BodyStream``) or ``None`` after a failure (see ``error``)."""

    def __cinit__(self, state, origin=None, *args, **kwargs):
        self.origin = origin

    # ---------------------------------------------------------------- asyncio protocol callbacks
    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=self._state.write_high, low=self._state.write_low)

    def set_transport(self, transport):
        """Switch to a new transport over the same socket (TLS started inside a proxy tunnel)."""
        self.transport = transport
        transport.set_write_buffer_limits(high=self._state.write_high, low=self._state.write_low)

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
            self._wake_drain()
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

    # ---------------------------------------------------------------- the end of an exchange
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

    # ---------------------------------------------------------------- failure
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
        self._wake_drain()
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
        self._timer = self._loop.call_later(max(d - _now(), 0.0), self._on_timer)
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

    # ---------------------------------------------------------------- the exchange (the Python face)
    def start(self, str method, str target, fields, long long content_length=-1,
              bint chunked=False, bytes body=None, bint close=False, bint head_request=False,
              double read_s=0, double write_s=0, double total_s=0):
        """Send a request head (and ``body`` when given); return the future of its response.

        ``content_length`` >= 0 sends Content-Length (the body then is ``body`` or follows through
        ``send_body``); ``chunked`` sends Transfer-Encoding: chunked.  ``head_request``: the
        response carries no body (HEAD, CONNECT).  Deadlines are seconds, 0 for none.
        """
        cdef double now
        if self._exc is not None:
            raise self._exc
        if self._resp_phase != P_IDLE or self._closing:
            raise RuntimeError("the connection is busy or closed")
        head = self._request_head(method, target, fields, content_length, chunked, body, close)
        self.exchanges += 1
        self.response_bytes = 0
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
        self._send_request(head, body)
        self._read_deadline = now + read_s if (read_s > 0 and not self._req_open) else 0
        waiter = self._loop.create_future()
        self._head_waiter = waiter
        self._arm()
        return waiter

    cdef int _request_done(self, bint complete) except -1:
        # The request left: a complete one starts the read deadline (the server owes bytes now).
        if complete and (self._resp_phase == P_HEAD or self._resp_phase == P_BODY) \
                and self._read_s > 0 and not self._read_paused:
            self._read_deadline = _now() + self._read_s
            self._arm()
        self._maybe_release()
        return 0

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
