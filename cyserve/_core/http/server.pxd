# cython: language_level=3
"""Contract of the HTTP/1.1 server role: one connection's request/response machine on a Stream.

``ServerRole`` drives a ``Stream`` (DESIGN principle 7): it cuts request heads out of the
stream's buffer, frames their bodies (``BodyReader`` into a ``BodyStream``), runs the app's entry
coroutine for each (its first step inline, inside the handler's own Task: eager.pxd) and answers through its
``ResponseWriter``.  Everything that moves this machine lives in ``server.pyx``; in particular
keep-alive is decided here alone and only ever turns off for a connection (h11's rule): the
response writer and the stream report facts (``close_after``, EOF, loss) and this file acts on
them.

The app sees this object as ``conn``: ``respond``, ``start_stream``/``write``/``end_stream``
(``end_stream(trailers)`` ends a chunked body with a trailer section, RFC 9112 §7.1.2),
``drain``, ``upgrade`` (101 and hand the stream to the next role); the connection's own facts
(peer, transport, disconnects) are its stream's, ``conn.stream``.  ``conn.forwarded`` is the one
per-request slot others write: what a trusted proxy said about the request (the proxy-headers
middleware sets it; ``Request`` and the access log read it).

Server facts for operations, each costing one test per request when unused: the state's
``observer`` hears of every finished response (``_report``), ``requests_total`` and
``requests_active`` count, ``limit_concurrency`` and ``limit_connections_per_ip`` refuse with 503
(``_refuse``), and with ``proxy_protocol`` a ``ProxyRole`` (``proxyproto``) reads the PROXY
header first and then switches the stream to this role.
"""
from cyserve._core.http.body cimport BodyStream
from cyserve._core.http.framing cimport BodyReader
from cyserve._core.http.head cimport Head
from cyserve._core.http.response cimport ResponseWriter
from cyserve._core.http.scanner cimport HeadScanner
from cyserve._core.http.state cimport ServerState
from cyserve._core.io.stream cimport Stream

# Phases (``_phase``); their meaning and invariants open server.pyx.
cdef enum:
    S_IDLE = 0
    S_BODY = 1
    S_BUSY = 2
    S_SWITCHED = 3
    S_DEAD = 4

# What the stream's input watch guards (``Stream.expect_input`` kinds).
cdef enum:
    K_NONE = 0
    K_FIRST = 1        # accepted, no byte yet (total)
    K_HEAD = 2         # a head is arriving (total: slowloris)
    K_BODY = 3         # a body is arriving (idle)
    K_KEEPALIVE = 4    # between requests (total)


cdef class ServerRole:
    cdef readonly Stream stream
    cdef ServerState _state
    cdef HeadScanner _scanner
    cdef ResponseWriter _response
    cdef int _phase
    cdef bint _keep_alive             # the one owner: only ever turns off for this connection
    cdef bint _handler_running
    cdef bint _continue_owed          # a 100 Continue is due when the handler first reads
    cdef bint _discarding             # the handler is done; the rest of its body is dropped
    cdef bint _http10
    cdef Head _head
    cdef BodyStream _body             # the handler's view of a streamed body; None when discarded
    cdef BodyReader _reader           # the body still arriving (S_BODY), else None
    cdef Py_ssize_t _requests
    cdef object _task                 # the handler's Task once it suspended, else None
    # Set by the proxy-headers middleware, None when each request starts: ``(client: (host,
    # port) | None, scheme: str | None, host: str | None)`` as a trusted proxy reported them.
    cdef public object forwarded
    cdef object _observer             # the state's observer when this response began, until told
    cdef double _started              # the monotonic clock when the request head was complete

    cdef int _process(self) except -1
    cdef int _start_request(self, Head head) except -1
    cdef int _feed_body(self) except -1
    cdef int _body_failed(self, object exc) except -1
    cdef int _dispatch(self, Head head, object body) except -1
    cdef int _handler_done(self) except -1
    cdef int _handler_failed(self, object exc) except -1
    cdef int _finish_request(self) except -1
    cdef int _next_request(self) except -1
    cdef int _reject(self, object exc) except -1
    cdef int _refuse(self, int status, str detail) except -1
    cdef int _report(self) except -1
    cdef int _respond_status(self, int status, str detail) except -1
    # The whole response in one write; cpdef so that C callers (the ASGI exchange) skip the
    # lookup by name.
    cpdef respond(self, int status, object fields, object body, object content_type=*)
    cdef int _conn_mode(self) except -1
    cdef int _shut(self) except -1
    cdef int _check_open(self) except -1
