# cython: language_level=3
"""Contract of ``WebSocketRole``: one WebSocket connection (RFC 6455) on a ``Stream``.

The role takes a stream over after the ``101`` (``websocket_role`` calls ``Stream.switch``: the
bytes after the response head are its first input), for either side: a server's role expects
masked frames and never masks, a client's masks every frame (§5.1, §5.3) and leaves closing TCP
to the server (§7.1.1).  Everything that moves the connection's state lives in ``role.pyx``; the
handler-facing API (``cyserve.websocket``) calls the Python face below and nothing else.

Input: ``FrameDecoder`` works straight on the stream's receive buffer; whole messages go to a
bounded queue, or straight to a ``receive()`` that is waiting.  At ``max_receive_queue`` queued
messages reading is held (``PAUSE_QUEUE``) and the rest stays in the buffer, until the handler
takes a message.  Pings are answered with pongs; pongs resolve ``ping()`` futures.

Output: every frame goes through the stream's outbox.  ``send`` returns None while the transport
is below its high water mark (the limits' ``write_high_water``, set on the transport when the
role takes over) and the outbox's drain awaitable otherwise (ready again at ``write_low_water``).

States (``state``):
- ``WS_OPEN``: messages flow both ways.
- ``WS_CLOSING``: this side sent a close frame (the handler's ``close``, a graceful shutdown) and
  waits ``close_timeout_s`` for the peer's (SLOT_ROLE, ``T_CLOSE``); messages still arriving are
  queued while there is room and dropped after, reading is never held.
- ``WS_CLOSED``: both close frames were exchanged, or the connection failed (a protocol error, a
  missed keepalive pong): nothing more is sent, the decoder is not fed again, waiters have failed.
  The server closes TCP now; a client waits ``close_timeout_s`` for the server to (``T_CLOSE``),
  then aborts.
- ``WS_LOST``: ``connection_lost`` ran.

Invariants: ``state`` only moves forward.  ``_code``/``_reason`` are set by the first close frame
sent or received, and replaced by the peer's close frame when it comes (so the code a handler sees
is the peer's whenever there was one); a connection lost with neither is 1006.  At most one
``receive()`` waits (``_waiter``), and only while the queue is empty.  SLOT_ROLE holds one timer
at a time (``_timer``): the keepalive pong (``T_PONG``) while open, the close (``T_CLOSE``)
after.  The stream's input watch (kind ``K_KEEPALIVE``, idle) is the keepalive interval: it is
armed while open and no keepalive ping is in flight.
"""
from cyserve._core.io.stream cimport Stream
from cyserve._core.ws.deflate cimport Deflater
from cyserve._core.ws.frames cimport FrameDecoder

cdef enum:
    WS_OPEN = 0
    WS_CLOSING = 1
    WS_CLOSED = 2
    WS_LOST = 3

# What SLOT_ROLE is armed for (``_timer``).
cdef enum:
    T_NONE = 0
    T_PONG = 1      # the keepalive ping's pong is due
    T_CLOSE = 2     # the close handshake (or, for a client, the server's TCP close) is due

# The stream's input watch kind: ``ping_interval_s`` of input silence.
cdef enum:
    K_KEEPALIVE = 1


cdef class WebSocketRole:
    cdef readonly Stream stream
    cdef FrameDecoder _decoder
    cdef Deflater _deflater                 # None without permessage-deflate
    cdef readonly bint is_client
    cdef readonly int state
    cdef object _loop
    # limits (WebSocketLimits, read once)
    cdef Py_ssize_t _max_queue
    cdef Py_ssize_t _write_high, _write_low
    cdef Py_ssize_t _compress_min
    cdef double _ping_interval_s            # 0: no keepalive
    cdef double _ping_timeout_s             # 0: a keepalive ping never times out
    cdef double _close_timeout_s
    # input
    cdef object _queue                      # collections.deque of str / bytes messages, or None
                                            # until a message first has to wait
    cdef object _waiter                     # the pending receive() future, or None
    cdef bint _holding                      # reading is held with PAUSE_QUEUE
    # pings: payload -> (future or None for the keepalive, monotonic send time), oldest first;
    # None until the first ping
    cdef dict _pings
    cdef bytes _keepalive                   # the keepalive ping in flight, or None
    cdef int _timer
    # closing
    cdef bint _close_sent, _close_received, _has_code
    cdef int _code
    cdef str _reason
    cdef object _closed_waiter              # wait_closed()'s future, made on first ask
    # The handler's task: cancelled when the server aborts (its grace period ran out).
    cdef public object handler_task

    cdef int _process(self) except -1
    cdef int _deliver(self, object message) except -1
    cdef int _on_pong(self, bytes payload) except -1
    cdef int _on_close(self, int code, str reason) except -1
    cdef int _start_close(self, int code, str reason) except -1
    cdef int _fail(self, int code, str reason) except -1
    cdef int _end_tcp(self) except -1
    cdef int _keepalive_ping(self) except -1
    cdef int _watch_idle(self) except -1
    cdef int _set_timer(self, int timer, double seconds) except -1
    cdef int _release(self) except -1
    cdef int _fail_waiters(self) except -1
    cdef int _lost(self) except -1
    cdef object _disconnect(self)
    cdef object _send_frame(self, bytes frame)
    # The handler API's steps (``receiving``/``iterating``/``sending``, their awaitables call these
    # on the loop's thread).  ``_take``: the next queued message, or None with the queue empty.
    cdef object _take(self)
    # The future of the next message: ``WebSocketDisconnect`` once closed, ``RuntimeError`` while
    # another receiver waits.
    cdef object _wait(self)
    # One message as one frame (``send``'s rules): None, or the drain awaitable while paused.
    cdef object _send_message(self, object message, bint text)


# Attach a role to ``stream`` (``Stream.switch``), built from ``limits`` (a WebSocketLimits);
# ``inflater``/``deflater`` when permessage-deflate was negotiated.
cdef WebSocketRole attach_role(Stream stream, object limits, bint is_client, object inflater,
                               Deflater deflater)
