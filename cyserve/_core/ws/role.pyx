# cython: language_level=3
"""``WebSocketRole``: one WebSocket connection on a ``Stream`` (see role.pxd for the states)."""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.ref cimport PyObject, Py_DECREF, Py_INCREF

from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.io.deadline cimport SLOT_INPUT, SLOT_OUTPUT, SLOT_ROLE, monotonic
from cyserve._core.io.outbox cimport Outbox
from cyserve._core.io.readgate cimport PAUSE_QUEUE
from cyserve._core.io.stream cimport RoleHooks, SHUTDOWN_GRACEFUL, Stream
from cyserve._core.ws.deflate cimport Deflater, Inflater
from cyserve._core.ws.frames cimport (
    CLOSE_ABNORMAL, CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, CLOSE_NO_STATUS, CLOSE_NORMAL,
    EV_CLOSE, EV_ERROR, EV_MESSAGE, EV_NONE, EV_PING, EV_PONG, OP_BINARY, OP_PING, OP_PONG,
    OP_TEXT, FrameDecoder, encode_close, encode_frame,
)

import asyncio
import collections
import collections.abc
import os

from cyserve.errors import WebSocketDisconnect

cdef object _deque = collections.deque
cdef object _InvalidStateError = asyncio.InvalidStateError
cdef object _urandom = os.urandom

# What a failed connection still reads and drops after its close frame (the lingering close,
# RFC 9112 §9.6 by analogy): a peer still sending a large message when it is refused gets our
# close frame instead of a reset that could wipe it.  Bounded in time by close_timeout_s.
cdef long long _LINGER_BYTES = 4 * 1024 * 1024

PY_WS_OPEN = WS_OPEN
PY_WS_CLOSING = WS_CLOSING
PY_WS_CLOSED = WS_CLOSED
PY_WS_LOST = WS_LOST


# ---------------------------------------------------------------- an already-received message
@cython.final
@cython.freelist(8)
cdef class _Received:
    """``await`` gives ``value`` at once: ``receive()`` when a message was already queued (no
    future, no loop turn)."""
    cdef object value

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration(self.value)


# ---------------------------------------------------------------- the handler API's awaitables
# ``cyserve.websocket`` returns these from ``receive()``, ``__anext__()`` and ``send()`` instead
# of coroutines: one small object per call where two Python coroutine frames were made and
# resumed per message (bench/ws/callgrind_echo.py counts the difference).  They are
# coroutine-shaped (``__await__``, ``send``, ``throw``, ``close``; ``collections.abc.Coroutine``
# recognises them, so ``asyncio.create_task`` and ``run_coroutine_threadsafe`` take them) and do
# nothing until their first step: the sync TestClient makes them on its own thread and awaits
# them on the loop's, so the role is only ever touched from the loop's thread.
#
# Each has an ``am_send`` slot (Python 3.10+, bpo-41756: what ``await`` calls on the iterator it
# delegates to), so finishing with a value needs no StopIteration: ``await`` reads the value
# straight from the slot, as it does from a Future's own iterator.  Cython does not fill that
# slot itself; it is set below, once, before either type is used.  ``__next__`` and
# ``send`` (what tracing and a Task driving the object directly use) raise StopIteration(value)
# as the iterator protocol says.
cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    ctypedef PySendResult (*sendfunc)(PyObject* iter, PyObject* arg, PyObject** result)
    ctypedef struct PyAsyncMethods:
        sendfunc am_send
    ctypedef struct _AsyncType "PyTypeObject":
        PyAsyncMethods* tp_as_async
    PySendResult PyIter_Send(object iter, object arg, PyObject** result) except? PYGEN_ERROR

cdef extern from *:
    """
    /* The iterator ``await`` takes from an awaitable: its am_await slot (a Future's is C, so no
       __await__ lookup and call). */
    static PyObject* cyserve_await_iter(PyObject* o) {
        PyAsyncMethods* am = Py_TYPE(o)->tp_as_async;
        if (am != NULL && am->am_await != NULL) {
            return am->am_await(o);
        }
        PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    """
    object cyserve_await_iter(object o)

cdef enum:
    _NEW = 0
    _WAITING = 1
    _DONE = 2

cdef object _current_task = asyncio.current_task
# Close codes that end ``async for message in ws`` quietly (RFC 6455 §7.4.1): normal closure,
# going away, and a close frame without a code.
cdef frozenset _NORMAL_CLOSE = frozenset((CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_NO_STATUS))


cdef object _thrown(object typ, object val, object tb):
    """The exception ``throw(typ[, val[, tb]])`` raises, built as a generator's throw builds it."""
    if val is None:
        exc = typ() if isinstance(typ, type) else typ
    elif isinstance(val, BaseException):
        exc = val
    else:
        exc = typ(val)
    if tb is not None:
        exc = exc.with_traceback(tb)
    return exc


cdef inline void _returned(object value, PyObject** result) noexcept:
    """``value`` into an am_send result, as the new reference the slot hands over."""
    Py_INCREF(value)
    result[0] = <PyObject*>value


@cython.final
@cython.freelist(8)
cdef class _Receiving:
    """The next message: queued, it is the result of the first step (no future); else the step
    yields the role's receive future to the Task and the message is the result of the next.
    With ``_iterating``, ``WebSocketDisconnect`` with a normal close code becomes
    ``StopAsyncIteration`` (the end of ``async for``).  Closing or throwing into it while it
    waits cancels its future, so a message arriving later stays queued for the next receive
    instead of resolving a future nobody awaits."""
    cdef WebSocketRole _role
    cdef object _future           # the role's receive future while waiting
    cdef object _iter             # its iterator (the Task is handed the future through it)
    cdef object _value            # the step's result: the message, or the future it yields
    cdef int _phase
    cdef bint _iterating

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        self._step()
        return self._finish()

    def send(self, value):
        if value is not None and self._phase == _NEW:
            raise TypeError("can't send non-None value to a just-started coroutine")
        self._step()
        return self._finish()

    def throw(self, typ, val=None, tb=None):
        # A Task throws a future's own exception in when it failed (the connection closed while
        # we waited), or CancelledError; a normal close still ends the iteration.
        exc = _thrown(typ, val, tb)
        self._stop()
        self._raise(exc)

    def close(self):
        self._stop()

    cdef object _finish(self):
        value = self._value
        self._value = None
        if self._phase == _DONE:
            raise StopIteration(value)
        return value

    cdef int _step(self) except -1:
        """Advance: ``_value`` is the message (``_phase`` DONE) or the future to wait on."""
        cdef WebSocketRole role
        cdef PyObject* out = NULL
        cdef int status
        if self._phase == _NEW:
            self._phase = _WAITING
            role = self._role
            try:
                if role.handler_task is None:
                    # Whoever waits on the socket is what a server abort cancels (_shutdown).
                    role.handler_task = _current_task()
                message = role._take()
                if message is not None:
                    self._phase = _DONE
                    self._value = message
                    return 0
                future = role._wait()
                self._future = future
                self._iter = cyserve_await_iter(future)
            except BaseException as exc:
                self._stop()
                self._raise(exc)
        elif self._phase == _DONE:
            raise RuntimeError("cannot reuse an already awaited receive()")
        # First: the future's iterator yields the future (marked blocking, as the Task expects).
        # Resumed: the Task saw the future done, and its iterator returns the message.
        try:
            status = PyIter_Send(self._iter, None, &out)
        except BaseException as exc:
            self._stop()
            self._raise(exc)
        value = <object>out
        Py_DECREF(value)   # PyIter_Send handed over a reference; ``value`` took one of its own
        if status == PYGEN_RETURN:
            self._phase = _DONE
            self._future = None
            self._iter = None
        self._value = value
        return 0

    cdef int _raise(self, object exc) except -1:
        if self._iterating and isinstance(exc, WebSocketDisconnect) and exc.code in _NORMAL_CLOSE:
            raise StopAsyncIteration from None
        raise exc

    cdef int _stop(self) except -1:
        future = self._future
        self._future = None
        self._iter = None
        self._value = None
        self._phase = _DONE
        if future is not None and not future.done():
            future.cancel()
        return 0


cdef int _receiving_send(PyObject* obj, PyObject* arg, PyObject** result) except -1:
    # am_send: 0 PYGEN_RETURN (result: the message), 1 PYGEN_NEXT (result: the future), -1 error.
    cdef _Receiving self = <_Receiving>obj
    if self._phase == _NEW and <object>arg is not None:
        raise TypeError("can't send non-None value to a just-started coroutine")
    self._step()
    value = self._value
    self._value = None
    _returned(value, result)
    return PYGEN_RETURN if self._phase == _DONE else PYGEN_NEXT


@cython.final
@cython.freelist(8)
cdef class _Sending:
    """One message, sent by the first step; that step is also the last unless the peer is slow,
    and then the steps go on as the outbox's drain awaitable (ready at ``write_low_water``)."""
    cdef WebSocketRole _role
    cdef object _message
    cdef object _drain             # the drain awaitable's iterator while waiting
    cdef int _phase
    cdef bint _text

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        return self.send(None)

    def send(self, value):
        cdef PyObject* out = NULL
        cdef int status = self._step(value, &out)
        result = <object>out
        Py_DECREF(result)   # _step handed over a reference; ``result`` took one of its own
        if status == PYGEN_NEXT:
            return result
        raise StopIteration(result)

    def throw(self, typ, val=None, tb=None):
        # As a Future's iterator does: the exception goes on up to whoever awaits.
        self._close()
        raise _thrown(typ, val, tb)

    def close(self):
        self._close()

    cdef int _close(self) except -1:
        self._phase = _DONE
        self._drain = None
        self._message = None
        return 0

    cdef int _step(self, object value, PyObject** result) except -1:
        """Advance: PYGEN_RETURN (``result``: None, sent) or PYGEN_NEXT (``result``: what the
        drain yields); a new reference in ``result`` either way."""
        cdef int status
        drain = self._drain
        if self._phase == _NEW:
            if value is not None:
                raise TypeError("can't send non-None value to a just-started coroutine")
            self._phase = _DONE
            message = self._message
            self._message = None
            waiter = self._role._send_message(message, self._text)
            if waiter is None:
                _returned(None, result)
                return PYGEN_RETURN
            drain = cyserve_await_iter(waiter)
            self._drain = drain
            self._phase = _WAITING
        elif self._phase == _DONE:
            raise RuntimeError("cannot reuse an already awaited send()")
        try:
            status = PyIter_Send(drain, value, result)
        except BaseException:
            self._close()
            raise
        if status != PYGEN_NEXT:
            self._close()
        return status


cdef int _sending_send(PyObject* obj, PyObject* arg, PyObject** result) except -1:
    return (<_Sending>obj)._step(<object>arg, result)


(<_AsyncType*>_Receiving).tp_as_async.am_send = <sendfunc>_receiving_send
(<_AsyncType*>_Sending).tp_as_async.am_send = <sendfunc>_sending_send
collections.abc.Coroutine.register(_Receiving)
collections.abc.Coroutine.register(_Sending)


# ---------------------------------------------------------------- the stream's calls (RoleHooks)
cdef int _made(object role) except -1:
    cdef WebSocketRole self = <WebSocketRole>role
    # send() waits above write_high_water: the stream's marks (its transport's, now and after a
    # set_transport) become the limits' own.
    self.stream.set_write_limits(self._write_high, self._write_low)
    self._watch_idle()
    return 0


cdef int _data(object role) except -1:
    return (<WebSocketRole>role)._process()


cdef int _eof(object role) except -1:
    # The peer half-closed: after its close frame that is the end (§7.1.1, the server closes
    # first; a client sees the server's FIN here), before it the connection dropped (1006 at
    # connection_lost).  Nothing is kept open for writing either way.
    return 0


cdef int _lost(object role, object exc) except -1:
    return (<WebSocketRole>role)._lost()


cdef int _expired(object role, int slot, int kind) except -1:
    cdef WebSocketRole self = <WebSocketRole>role
    cdef int timer
    if self.state == WS_LOST:
        return 0
    if slot == SLOT_INPUT:
        if kind == K_KEEPALIVE and self.state == WS_OPEN:
            self._keepalive_ping()
    elif slot == SLOT_ROLE:
        timer = self._timer
        self._timer = T_NONE
        if timer == T_PONG and self.state == WS_OPEN:
            # §7.1.7 with 1011 (websockets' and browsers' choice for a dead peer).
            self._fail(CLOSE_INTERNAL_ERROR, "keepalive ping timeout")
        elif timer == T_CLOSE:
            # The peer did not answer our close frame (or, for a client, the server did not
            # close TCP after the handshake) within close_timeout_s.
            if not self._has_code:
                self._has_code = True
                self._code = CLOSE_ABNORMAL
                self._reason = ""
            self.stream.outbox.close(self._disconnect())
            self.stream.abort()
    elif slot == SLOT_OUTPUT:
        # Nothing written for write_s was taken by the peer: give up on it (as the HTTP role
        # does); send() and its drain raise WebSocketDisconnect(1006).
        self.stream.outbox.lost(self._disconnect())
        self.stream.abort()
    return 0


cdef int _shutdown(object role, int mode) except -1:
    cdef WebSocketRole self = <WebSocketRole>role
    if mode == SHUTDOWN_GRACEFUL:
        if self.state == WS_OPEN:
            self._start_close(CLOSE_GOING_AWAY, "server shutting down")
    else:
        task = self.handler_task
        if task is not None and not task.done():
            task.cancel()
    return 0


cdef RoleHooks _HOOKS
_HOOKS.made = _made
_HOOKS.data = _data
_HOOKS.eof = _eof
_HOOKS.lost = _lost
_HOOKS.expired = _expired
_HOOKS.shutdown = _shutdown


@cython.final
cdef class WebSocketRole:
    """One WebSocket connection on a stream (see role.pxd)."""

    def __init__(self):
        raise TypeError("WebSocketRole is made by websocket_role()")

    # ---------------------------------------------------------------- input
    cdef int _process(self) except -1:
        cdef Stream stream = self.stream
        cdef ReceiveBuffer buf = stream.buffer
        cdef FrameDecoder decoder = self._decoder
        cdef Py_ssize_t n, used
        cdef int ev
        while True:
            n = buf.size()
            if n == 0:
                return 0
            if self.state >= WS_CLOSED or stream.closing:
                buf.consume(n)  # after the close frame (or a failure) nothing more is read
                return 0
            queue = self._queue
            if self.state == WS_OPEN and queue is not None and len(queue) >= self._max_queue:
                # The handler is not receiving: hold the peer back (TCP backpressure) with the
                # rest left in the buffer, until receive() takes a message.
                if not self._holding:
                    self._holding = True
                    stream.hold_reading(PAUSE_QUEUE)
                    if self._timer == T_PONG:
                        # The pong can't be read while we hold back: not the peer's fault.
                        self._set_timer(T_NONE, 0)
                        self._keepalive = None
                return 0
            ev = decoder.next(buf.head(), n, &used)
            buf.consume(used)
            if ev == EV_NONE:
                return 0
            if ev == EV_MESSAGE:
                self._deliver(decoder.payload)
            elif ev == EV_PING:
                # §5.5.2: a pong with the ping's payload, unless the peer's close came first
                # (then the state is CLOSED and nothing more is sent).
                payload = decoder.payload
                stream.outbox.send(encode_frame(OP_PONG, <const unsigned char*>PyBytes_AS_STRING(payload),
                                                PyBytes_GET_SIZE(payload), True, False, self.is_client))
            elif ev == EV_PONG:
                self._on_pong(decoder.payload)
            elif ev == EV_CLOSE:
                self._on_close(decoder.close_code, decoder.close_reason)
            else:
                self._fail(decoder.close_code, decoder.error)

    cdef int _deliver(self, object message) except -1:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            # Straight to the waiting handler, unless the wait was cancelled (one call, not a
            # done() check first: this runs once per message).
            try:
                waiter.set_result(message)
                return 0
            except _InvalidStateError:
                pass
        queue = self._queue
        if queue is None:
            # Made on the first message that finds no receiver waiting: an idle connection, or
            # one whose handler always waits first, never pays for it (a deque is 760 bytes).
            queue = self._queue = _deque()
        elif self.state == WS_CLOSING and len(queue) >= self._max_queue:
            return 0  # we are closing: the handler said it wants no more than it can queue
        queue.append(message)
        return 0

    cdef int _on_pong(self, bytes payload) except -1:
        # A pong answers the latest ping with its payload (§5.5.3), so it answers every ping sent
        # before that one too; an unsolicited pong answers nothing.
        cdef dict pings = self._pings
        cdef double now
        if pings is None or payload not in pings:
            return 0
        now = monotonic()
        while pings:
            key = next(iter(pings))
            future, sent_at = pings.pop(key)
            if future is not None and not future.done():
                future.set_result(now - <double>sent_at)
            if key == self._keepalive:
                self._keepalive = None
                if self._timer == T_PONG:
                    self._set_timer(T_NONE, 0)
                self._watch_idle()
            if key == payload:
                break
        return 0

    cdef int _on_close(self, int code, str reason) except -1:
        # The peer's close frame: it is what closed the connection (replacing ours, if we sent
        # one first).
        self._close_received = True
        self._has_code = True
        self._code = code
        self._reason = reason or ""
        if self.state == WS_OPEN:
            # §5.5.1: answer with a close frame, echoing the status code; one without a code
            # (1005, which §7.4.1 forbids sending) is answered with 1000, a normal closure.
            self._close_sent = True
            self.stream.outbox.send(encode_close(CLOSE_NORMAL if code == CLOSE_NO_STATUS else code,
                                                 "", self.is_client))
        self.state = WS_CLOSED
        self._set_timer(T_NONE, 0)
        self._fail_waiters()
        self._end_tcp()
        return 0

    # ---------------------------------------------------------------- closing
    cdef int _start_close(self, int code, str reason) except -1:
        """Our side starts the close handshake (§7.1.2): send the close frame, wait for the
        peer's within close_timeout_s."""
        if self.state != WS_OPEN:
            return 0
        self.state = WS_CLOSING
        self._close_sent = True
        if not self._has_code:
            self._has_code = True
            self._code = code
            self._reason = reason
        self.stream.outbox.send(encode_close(code, reason, self.is_client))
        self.stream.expect_input(0, 0, False)   # no more keepalive pings
        self._keepalive = None
        self._set_timer(T_CLOSE, self._close_timeout_s)
        if self._holding:
            # The peer's close frame must be read: nothing is held back any more.
            self._release()
        return 0

    cdef int _fail(self, int code, str reason) except -1:
        """§7.1.7, fail the connection: our close frame with ``code``, then TCP closes (lingering,
        so the close frame is read rather than wiped by a reset)."""
        if self.state >= WS_CLOSED:
            return 0
        if not self._close_sent:
            self._close_sent = True
            self.stream.outbox.send(encode_close(code, reason or "", self.is_client))
        self._has_code = True
        self._code = code
        self._reason = reason or ""
        self.state = WS_CLOSED
        self._set_timer(T_NONE, 0)
        self._fail_waiters()
        self.stream.outbox.close(self._disconnect())
        self.stream.close_lingering(_LINGER_BYTES, self._close_timeout_s)
        return 0

    cdef int _end_tcp(self) except -1:
        """Both close frames went: §7.1.1, the server closes TCP first; a client waits for it."""
        self.stream.expect_input(0, 0, False)
        if self.is_client:
            self._set_timer(T_CLOSE, self._close_timeout_s)
        else:
            self.stream.outbox.close(self._disconnect())
            self.stream.close()
        return 0

    cdef int _fail_waiters(self) except -1:
        """The connection is closed: a waiting receive() and every ping fail with the close."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(self._disconnect())
        pings = self._pings
        if pings:
            self._pings = None
            for future, _ in pings.values():
                if future is not None and not future.done():
                    future.set_exception(self._disconnect())
        self._keepalive = None
        return 0

    cdef int _lost(self) except -1:
        self.state = WS_LOST
        self._timer = T_NONE
        if not self._has_code:
            # Neither side's close frame: the connection dropped (§7.1.5, 1006).
            self._has_code = True
            self._code = CLOSE_ABNORMAL
            self._reason = ""
        self._fail_waiters()
        # Before the stream's own: whoever waits on drain() sees the WebSocket's close.
        self.stream.outbox.lost(self._disconnect())
        waiter = self._closed_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return 0

    cdef object _disconnect(self):
        if self._has_code:
            return WebSocketDisconnect(self._code, self._reason)
        return WebSocketDisconnect(CLOSE_ABNORMAL, "")

    # ---------------------------------------------------------------- timers
    cdef int _keepalive_ping(self) except -1:
        cdef bytes payload = _urandom(4)
        if self._pings is None:
            self._pings = {}
        while payload in self._pings:
            payload = _urandom(4)
        self._keepalive = payload
        self._pings[payload] = (None, monotonic())
        self.stream.outbox.send(encode_frame(OP_PING, <const unsigned char*>PyBytes_AS_STRING(payload),
                                             4, True, False, self.is_client))
        if self._ping_timeout_s > 0:
            self._set_timer(T_PONG, self._ping_timeout_s)
        return 0

    cdef int _watch_idle(self) except -1:
        if self.state == WS_OPEN and self._ping_interval_s > 0 and self._keepalive is None:
            self.stream.expect_input(K_KEEPALIVE, self._ping_interval_s, True)
        return 0

    cdef int _set_timer(self, int timer, double seconds) except -1:
        self._timer = timer
        if timer == T_NONE:
            self.stream.deadline.clear(SLOT_ROLE)
        else:
            self.stream.deadline.set(SLOT_ROLE, seconds)
        return 0

    cdef int _release(self) except -1:
        self._holding = False
        self.stream.release_reading(PAUSE_QUEUE)
        self._watch_idle()
        # What stayed in the buffer while we held back is decoded now.
        self.stream.process()
        return 0

    # ---------------------------------------------------------------- output
    cdef object _send_frame(self, bytes frame):
        self.stream.outbox.send(frame)
        if self.stream.outbox.paused:
            return self.stream.outbox.drain()
        return None

    # ---------------------------------------------------------------- the Python face
    cdef object _take(self):
        queue = self._queue
        if not queue:
            return None
        message = queue.popleft()
        if self._holding and len(queue) < self._max_queue:
            self._release()
        return message

    cdef object _wait(self):
        if self.state >= WS_CLOSED:
            raise self._disconnect()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            raise RuntimeError("another coroutine is already waiting for the next message")
        waiter = self._loop.create_future()
        self._waiter = waiter
        return waiter

    def receive(self):
        """An awaitable of the next message (``str`` for text, ``bytes`` for binary).

        Queued messages come first, even after the close; then ``WebSocketDisconnect`` with the
        close's code and reason.  One receiver at a time (``RuntimeError`` otherwise)."""
        cdef _Received done
        message = self._take()
        if message is None:
            return self._wait()
        done = _Received.__new__(_Received)
        done.value = message
        return done

    def receiving(self):
        """``receive()`` as a coroutine-shaped awaitable that starts when first awaited, on the
        awaiting thread (see ``_Receiving``)."""
        cdef _Receiving step = _Receiving.__new__(_Receiving)
        step._role = self
        return step

    def iterating(self):
        """``receiving()`` for ``async for``: a normal close ends the iteration."""
        cdef _Receiving step = _Receiving.__new__(_Receiving)
        step._role = self
        step._iterating = True
        return step

    def sending(self, message, bint text=False):
        """``send(message, text)`` as a coroutine-shaped awaitable that starts when first awaited
        (see ``_Sending``)."""
        cdef _Sending step = _Sending.__new__(_Sending)
        step._role = self
        step._message = message
        step._text = text
        return step

    def send(self, message, bint text=False):
        """Send ``message`` as one frame: ``str`` as text, bytes-like as binary, or as text with
        ``text`` (the caller vouches that it is UTF-8: JSON made as bytes); compressed with
        permessage-deflate when it is at least ``compression_min_bytes`` long.  Returns None, or
        an awaitable while the peer is slow to read (above ``write_high_water``: it is ready again
        at ``write_low_water``).  ``WebSocketDisconnect`` once a close frame went either way."""
        return self._send_message(message, text)

    cdef object _send_message(self, object message, bint text):
        cdef bytes payload
        cdef int opcode = OP_TEXT if text else OP_BINARY
        cdef bint rsv1 = False
        if self.state != WS_OPEN or self.stream.closing:
            raise self._disconnect()
        if type(message) is str:
            payload = (<str>message).encode("utf-8")
            opcode = OP_TEXT
        elif type(message) is bytes:
            payload = <bytes>message
        elif isinstance(message, (bytearray, memoryview)):
            payload = bytes(message)
        else:
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        if self._deflater is not None and PyBytes_GET_SIZE(payload) >= self._compress_min:
            # RFC 7692 §6: the message compressed, RSV1 on its (only) frame.
            payload = self._deflater.compress(payload)
            rsv1 = True
        return self._send_frame(encode_frame(opcode, <const unsigned char*>PyBytes_AS_STRING(payload),
                                             PyBytes_GET_SIZE(payload), True, rsv1, self.is_client))

    def send_frame_bytes(self, bytes frame not None, bint wait=True):
        """Write a frame built beforehand (``encode_message``: broadcast builds it once for many
        connections); the same return and errors as ``send``, except that with ``wait`` false
        it always returns None (a caller that will not wait gets no future to leave behind)."""
        if self.state != WS_OPEN or self.stream.closing:
            raise self._disconnect()
        if wait:
            return self._send_frame(frame)
        self.stream.outbox.send(frame)
        return None

    def ping(self, data=b""):
        """Send a ping; the future resolves with the round trip in seconds when its pong comes
        (§5.5.2), and fails with ``WebSocketDisconnect`` if the connection closes first.  Empty
        ``data`` sends 4 random bytes, so each ping is told apart."""
        cdef bytes payload = bytes(data)
        if self.state != WS_OPEN or self.stream.closing:
            raise self._disconnect()
        if PyBytes_GET_SIZE(payload) > 125:
            raise ValueError("a ping's payload is at most 125 bytes (RFC 6455 §5.5)")
        if self._pings is None:
            self._pings = {}
        if not payload:
            payload = _urandom(4)
            while payload in self._pings:
                payload = _urandom(4)
        elif payload in self._pings:
            raise ValueError("a ping with this payload is already waiting for its pong")
        future = self._loop.create_future()
        self._pings[payload] = (future, monotonic())
        self.stream.outbox.send(encode_frame(OP_PING, <const unsigned char*>PyBytes_AS_STRING(payload),
                                             PyBytes_GET_SIZE(payload), True, False, self.is_client))
        return future

    def close(self, int code=CLOSE_NORMAL, str reason not None=""):
        """Start the close handshake (once; later calls only wait) and return ``wait_closed()``.

        The peer has ``close_timeout_s`` to answer with its close frame; then TCP closes (a
        server closes it, a client waits for the server to), or is aborted after the timeout."""
        if not ((1000 <= code <= 1003) or (1007 <= code <= 1014) or (3000 <= code <= 4999)):
            # §7.4.1/§7.4.2: 1004-1006 and 1015 are never sent; others are not close codes.
            raise ValueError(f"{code} is not a close code an endpoint may send (RFC 6455 §7.4)")
        if len(reason.encode("utf-8")) > 123:
            raise ValueError("a close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5)")
        if self.state == WS_OPEN and not self.stream.closing:
            self._start_close(code, reason)
        return self.wait_closed()

    def abort(self):
        """Drop the connection now, no close handshake (the peer sees 1006)."""
        if self.state != WS_LOST:
            self.stream.outbox.lost(self._disconnect())
            self.stream.abort()

    def wait_closed(self):
        """A future resolved when the connection is gone (TCP closed)."""
        if self._closed_waiter is None:
            self._closed_waiter = self._loop.create_future()
            if self.state == WS_LOST:
                self._closed_waiter.set_result(None)
        return self._closed_waiter

    @property
    def close_code(self):
        """The close code (RFC 6455 §7.4): the peer's close frame's, else the one this side
        sent, else 1006 once the connection is lost; None while open."""
        return self._code if self._has_code else None

    @property
    def close_reason(self):
        return self._reason if self._has_code else None

    @property
    def buffered_bytes(self):
        """Bytes sent and not yet taken by the peer (queued here and in the transport)."""
        return self.stream.outbox.buffered()

    @property
    def write_paused(self):
        """True while the peer is slow: above ``write_high_water`` (``send`` would wait)."""
        return self.stream.outbox.paused or self.stream.outbox.buffered() >= self._write_high

    @property
    def queued(self):
        """Messages received and not yet taken by ``receive``."""
        return 0 if self._queue is None else len(self._queue)

    @property
    def reading_held(self):
        return self._holding

    @property
    def compressed(self):
        """permessage-deflate was negotiated."""
        return self._deflater is not None


cdef WebSocketRole attach_role(Stream stream, object limits, bint is_client, object inflater,
                               Deflater deflater):
    cdef WebSocketRole self = WebSocketRole.__new__(WebSocketRole)
    if inflater is not None and not isinstance(inflater, Inflater):
        raise TypeError(f"inflater must be a deflate.Inflater, not {type(inflater).__name__}")
    self.stream = stream
    self.is_client = is_client
    self._loop = stream._loop
    self._decoder = FrameDecoder(expect_masked=not is_client,
                                 max_frame_bytes=limits.max_frame_bytes,
                                 max_message_bytes=limits.max_message_bytes,
                                 inflater=inflater)
    self._deflater = deflater
    self._max_queue = limits.max_receive_queue
    self._write_high = limits.write_high_water
    self._write_low = limits.write_low_water
    self._compress_min = limits.compression_min_bytes
    self._ping_interval_s = limits.ping_interval_s or 0.0
    self._ping_timeout_s = limits.ping_timeout_s or 0.0
    self._close_timeout_s = limits.close_timeout_s
    self._queue = None     # made by the first message that has to wait (_deliver)
    self._pings = None     # made by the first ping
    self._reason = ""
    self.state = WS_OPEN
    stream.switch(self, &_HOOKS)
    return self


def websocket_role(Stream stream not None, limits not None, bint is_client=False, inflater=None,
                   Deflater deflater=None):
    """Hand ``stream`` (after its 101) to a new ``WebSocketRole``; see role.pyi."""
    if stream.lost or stream.closing:
        raise WebSocketDisconnect(CLOSE_ABNORMAL, "the connection closed before the WebSocket opened")
    return attach_role(stream, limits, is_client, inflater, deflater)


# ---------------------------------------------------------------- the handler API's per-message calls
# ``cyserve.websocket.WebSocketConnection`` takes these three as its methods (``receive``,
# ``send``, ``__anext__``): they run once per message, and as C functions they cost no Python
# frame.  ``ws`` is the connection; its ``_role`` is None until the WebSocket is open.
cdef WebSocketRole _open_role(object ws):
    role = ws._role
    if role is None:
        raise RuntimeError("the WebSocket is not open: accept() it first")
    return <WebSocketRole?>role


def connection_receive(ws):
    """The next message: ``str`` for text, ``bytes`` for binary (``await`` it).  Queued
    messages come first, also after the close; then ``WebSocketDisconnect(code, reason)``."""
    cdef _Receiving step = _Receiving.__new__(_Receiving)
    step._role = _open_role(ws)
    return step


def connection_send(ws, message):
    """Send one message: ``str`` as text, bytes-like as binary (``await`` it).  Done at once
    unless the peer is slow to read; then it waits until the connection's send buffer drained
    below ``write_low_water``.  ``WebSocketDisconnect`` once the connection is closed."""
    cdef _Sending step = _Sending.__new__(_Sending)
    step._role = _open_role(ws)
    step._message = message
    return step


def connection_anext(ws):
    """The next message of ``async for message in ws``; a normal close (1000, 1001, or a close
    frame without a code: RFC 6455 §7.4.1) ends the iteration."""
    cdef _Receiving step = _Receiving.__new__(_Receiving)
    step._role = _open_role(ws)
    step._iterating = True
    return step


# ---------------------------------------------------------------- broadcast
def broadcast_message(sockets, message):
    """``cyserve.websocket.broadcast``: ``message`` as one frame (built once; a client's is
    masked per connection) to every open socket of ``sockets`` not above its write high water;
    returns those that are, skips closed ones.

    The frames are corked into each member's outbox and leave two loop turns later in one write
    per member (``_uncork``, ``_flush``): the broadcasts made until then (a publisher's queued
    messages, and the next one it was sent meanwhile) reach a member in one system call, and the
    publisher's own replies are not held behind a thousand writes.  A fan-out's cost is mostly
    the kernel's, per write (bench/ws/README.md: 1,000 members, 190,860 -> 441,534 deliveries/s
    on one core when a publisher keeps two messages in flight)."""
    cdef bytes frame = encode_message(message)
    cdef WebSocketRole role
    cdef Outbox outbox
    cdef list slow = []
    cdef list corked = []
    loop = None
    for ws in sockets:
        found = ws._role
        if found is None:
            continue
        role = <WebSocketRole?>found
        if role.state != WS_OPEN or role.stream.closing:
            continue  # closing or gone: not slow, and nothing more is sent to it
        outbox = role.stream.outbox
        if outbox.closed:
            continue
        # Above write_high_water: the transport's own buffer past it has paused the outbox
        # (pause_writing), and what is corked here but not yet written counts too.  (No call
        # for the transport's size: once per member, it was an eighth of a delivery's cost.)
        if outbox.paused or outbox._queued >= role._write_high:
            slow.append(ws)
            continue
        if not outbox.corked:
            # Not inside this connection's own read pass (whose end flushes it): ours to flush.
            outbox.cork()
            corked.append(outbox)
            loop = role._loop
        outbox.send(encode_message(message, True) if role.is_client else frame)
    if corked:
        loop.call_soon(_uncork, corked, loop)
    return slow


def _uncork(list outboxes, loop):
    """Hand ``broadcast_message``'s corked outboxes to ``_flush`` one loop turn later: a callback
    scheduled now runs after the handlers the last poll woke, so a publisher that was sent its
    next message meanwhile broadcasts it into the same writes."""
    loop.call_soon(_flush, outboxes)


def _flush(list outboxes):
    """One write per connection of what broadcasts queued (nothing for one that closed
    meanwhile: its outbox flushed or dropped its queue then)."""
    cdef Outbox outbox
    for outbox in outboxes:
        outbox.uncork()


def encode_message(message, bint mask=False):
    """One unfragmented, uncompressed frame of ``message`` (``str``: text, bytes-like: binary)."""
    cdef bytes payload
    cdef int opcode
    if type(message) is str:
        payload = (<str>message).encode("utf-8")
        opcode = OP_TEXT
    elif isinstance(message, (bytes, bytearray, memoryview)):
        payload = bytes(message)
        opcode = OP_BINARY
    else:
        raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
    return encode_frame(opcode, <const unsigned char*>PyBytes_AS_STRING(payload),
                        PyBytes_GET_SIZE(payload), True, False, mask)
