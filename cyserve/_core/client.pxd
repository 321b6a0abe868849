# cython: language_level=3
"""Contract of the HTTP/1.1 client connection (the client role of the one codec, DESIGN §3).

The same pieces as the server, in the other role: requests are serialised with the writer's
field validation (``HeadWriter._put_field``: no CR/LF/NUL, token names), responses are found with
``HeadScanner(response_mode=True)`` and parsed with ``parse_response``, chunked bodies go through
``ChunkedDecoder`` / ``chunk_header``, and a response body the caller streams is a ``BodyStream``
whose reads drive this connection's read pause/resume.

``ClientState`` is shared by every connection of one ``Client``: limits, water marks and the
loop, copied into C fields once.  ``HTTPClientCore`` is one connection; the loop sees it through a
tiny Python subclass mixing in ``asyncio.BufferedProtocol`` (see DESIGN, "Loop gotcha").

One exchange (request + response) at a time; no pipelining.  Results travel through plain
wake-up futures resolved with ``None`` and the error stored on the connection, so an exchange that
nobody awaits any more never leaves a "Future exception was never retrieved" behind.
"""
from cyserve._core.body cimport BodyOwner, BodyStream
from cyserve._core.buffer cimport ReceiveBuffer
from cyserve._core.chunked cimport ChunkedDecoder
from cyserve._core.parser cimport Head, HeadScanner, ParserLimits
from cyserve._core.writer cimport HeadWriter


cdef class ClientState:
    cdef readonly object loop
    cdef readonly ParserLimits limits
    cdef readonly Py_ssize_t max_trailer_bytes
    cdef readonly Py_ssize_t read_high        # unread response body buffered before reading pauses
    cdef readonly Py_ssize_t read_low         # reading resumes at or below this
    cdef readonly Py_ssize_t write_high       # transport write buffer: pause_writing above
    cdef readonly Py_ssize_t write_low
    cdef readonly Py_ssize_t recv_initial, recv_max
    cdef readonly Py_ssize_t read_chunk       # free bytes asked of the receive buffer per read
    cdef readonly double keepalive_s          # an idle pooled connection closes after this


cdef class HTTPClientCore(BodyOwner):
    cdef ClientState _state
    cdef readonly object transport
    cdef readonly object origin               # the pool key this connection serves
    cdef public object listener               # .connection_released(conn) / .connection_closed(conn)
    cdef ReceiveBuffer _buf
    cdef HeadScanner _scanner
    cdef HeadWriter _writer
    # exchange state: _req_* for the request being sent, _resp_phase for the response
    cdef int _resp_phase                      # P_*
    cdef bint _req_open                       # request body still being sent
    cdef int _req_framing                     # BODY_LENGTH / BODY_CHUNKED / BODY_NONE
    cdef long long _req_remaining             # BODY_LENGTH: bytes still promised
    cdef bint _head_request                   # HEAD or CONNECT: the response has no body
    cdef bint _connect                        # a CONNECT: a 2xx answer opens a tunnel
    cdef bint _req_close                      # we asked for Connection: close
    cdef bint _keep_alive                     # the connection may carry another exchange
    cdef Head _head
    cdef object _resp_body                    # bytes (complete) or BodyStream
    cdef BodyStream _stream
    cdef ChunkedDecoder _decoder
    cdef long long _body_remaining            # FRAMING_LENGTH: bytes still to arrive
    cdef readonly long long response_bytes    # bytes received during the current exchange
    cdef readonly Py_ssize_t exchanges        # exchanges started on this connection
    cdef object _exc                          # why the connection failed, else None
    cdef object _head_waiter
    cdef object _drain_waiter
    cdef bint _write_paused
    cdef bint _read_paused
    cdef bint _peer_eof
    cdef bint _closing
    cdef readonly bint closed                 # connection_lost ran
    # deadlines (monotonic seconds, 0 = none) behind one lazy timer
    cdef double _read_s, _write_s
    cdef double _read_deadline, _write_deadline, _total_deadline, _idle_deadline
    cdef readonly double idle_since           # when the last exchange ended (monotonic)
    cdef object _timer
    cdef double _timer_at

    cdef int _process(self) except -1
    cdef int _on_head(self, Head head) except -1
    cdef int _feed_body(self) except -1
    cdef int _body_done(self) except -1
    cdef int _maybe_release(self) except -1
    cdef int _fail(self, object exc) except -1
    cdef int _shut(self, bint abort) except -1
    cdef int _wake_head(self) except -1
    cdef int _update_reading(self) except -1
    cdef int _arm(self) except -1
    cdef int _send_framed(self, bytes data) except -1
    cdef _closed_error(self, object exc)
    cdef _cancel_timer(self)


# Serialise a request head with the writer's field validation: "METHOD SP target SP HTTP/1.1",
# the caller's fields (CR/LF/NUL and non-token names refused; Content-Length, Transfer-Encoding
# and Connection dropped: framing is decided here), then the framing field and, when asked,
# Connection: close.  ``body`` (bytes) is appended when given, so a small request is one write.
cdef bytes request_head(HeadWriter w, str method, str target, object fields, int framing,
                        long long content_length, bint close, object body)
