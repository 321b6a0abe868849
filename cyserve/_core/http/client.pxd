# cython: language_level=3
"""Contract of the HTTP/1.1 client role: one exchange at a time on a Stream.

The other role of the one codec (DESIGN §3): requests are serialised by the same ``HeadWriter``
(field validation: no header injection) and their bodies framed by the same ``BodyWriter``;
responses are cut out by the same ``HeadScanner`` in response mode and ``parse_response``, their
bodies framed by the same ``BodyReader`` into a ``BodyStream`` that holds reading back while its
reader is behind.  Flow control is the stream's outbox and read gate; every deadline (read, write,
total, idle in the pool) is the stream's one timer.  Everything that moves the exchange lives in
``client.pyx``.

One exchange (request + response) at a time; no pipelining.  Results travel through plain
wake-up futures resolved with ``(head, body)`` or ``None`` with the error kept on the connection
(``error``), so an exchange nobody awaits any more never leaves a "Future exception was never
retrieved" behind.
"""
from cyserve._core.http.body cimport BodyStream
from cyserve._core.http.framing cimport BodyReader, BodyWriter
from cyserve._core.http.head cimport Head
from cyserve._core.http.scanner cimport HeadScanner
from cyserve._core.http.serialise cimport HeadWriter
from cyserve._core.http.state cimport ClientState
from cyserve._core.io.stream cimport Stream

# Phases (``_phase``); their meaning and the exchange's invariants open client.pyx.
cdef enum:
    P_IDLE = 0
    P_HEAD = 1
    P_BODY = 2
    P_DONE = 3
    P_SWITCHED = 4
    P_DEAD = 5

# What the stream's input watch guards.
cdef enum:
    K_NONE = 0
    K_READ = 1        # response bytes are due (idle: each read moves it)
    K_IDLE = 2        # pooled between exchanges: keep-alive expiry (total)


cdef class ClientRole:
    cdef readonly Stream stream
    cdef ClientState _state
    cdef HeadScanner _scanner
    cdef HeadWriter _heads
    cdef BodyWriter _request
    cdef readonly object origin               # the pool key this connection serves
    cdef public object listener               # .connection_released(conn) / .connection_closed(conn)
    cdef readonly Py_ssize_t exchanges        # exchanges started on this connection
    cdef readonly long long response_bytes    # bytes received during the current exchange
    cdef readonly double idle_since           # when the last exchange ended (monotonic)
    cdef int _phase
    cdef bint _keep_alive                     # the connection may carry another exchange
    cdef bint _req_open                       # the request body is still being sent
    cdef bint _req_close                      # we asked for Connection: close
    cdef bint _head_request                   # HEAD or CONNECT: the response has no body
    cdef bint _connect                        # a CONNECT: a 2xx answer opens a tunnel
    cdef bint _upgrade                        # we asked to upgrade: a 101 ends HTTP here
    cdef Py_ssize_t _interim                  # 1xx responses seen in this exchange
    cdef Py_ssize_t _unread                   # buffered bytes left after the last data pass
    cdef Head _head
    cdef object _resp_body                    # bytes (complete) or the BodyStream
    cdef BodyStream _body
    cdef BodyReader _reader
    cdef object _head_waiter                  # start()'s future: (head, body) or None
    cdef object _exc                          # why the connection failed; final
    cdef double _read_s, _write_s

    cdef int _process(self) except -1
    cdef int _on_head(self, Head head) except -1
    cdef int _feed_body(self) except -1
    cdef int _body_done(self) except -1
    cdef int _wake_head(self) except -1
    cdef int _request_done(self, bint complete) except -1
    cdef int _maybe_release(self) except -1
    cdef int _fail(self, object exc) except -1
    cdef int _shut(self, bint abort) except -1
    cdef object _closed_error(self, object exc)

