# cython: language_level=3
"""Contract of what the connections of one server, or of one client, share: the configuration
copied into C fields once (read on the hot path without attribute look-ups), the loop and, for a
server, the app's entry point and the registry of live connections that shutdown walks.

Every default lives in ``cyserve.config`` (``ServerConfig``, ``ClientLimits``): these classes only
copy, never default.  Both are immutable after construction but for the server's shutdown flag,
the server's counters (``requests_total``, ``requests_active``, the per-address connection
counts) and the two hooks Python sets on a running server: ``observer`` (told of every finished
response) and ``proxy_trusted`` (which peers may send a PROXY protocol header).
"""
from cyserve._core.http.scanner cimport ParserLimits

# Free bytes the receive buffer offers each socket read: a server reads requests (mostly small),
# a client reads response bodies (often large).
cdef enum:
    MIN_READ_BYTES = 4096
    CLIENT_READ_BYTES = 65536


cdef class ServerState:
    cdef readonly object entry           # async (conn, Head, body: bytes | BodyStream) -> None
    cdef readonly object loop
    cdef readonly set connections        # live streams (the registry: join/leave)
    cdef readonly bint shutting_down
    cdef readonly ParserLimits limits
    cdef readonly Py_ssize_t max_body_bytes
    cdef readonly Py_ssize_t max_trailer_bytes
    cdef readonly Py_ssize_t max_pipeline_bytes
    cdef readonly Py_ssize_t max_keepalive_requests
    cdef readonly long long max_linger_bytes
    cdef readonly double first_request_s, head_s, body_idle_s, keepalive_s
    cdef readonly double write_s, handler_s, linger_s
    cdef readonly Py_ssize_t write_high, write_low, body_high, body_low
    cdef readonly Py_ssize_t recv_initial, recv_max
    cdef readonly object server_name
    cdef readonly bint date_header       # send Date (RFC 9110 §6.6.1); off: --no-date-header
    cdef object _idle                    # future resolved when connections empties during shutdown
    # Told of each finished response: ``observer.response_done(conn, head, status, sent_bytes,
    # duration_s)``; None (the default) costs one pointer test per request.  Read once when a
    # request starts, so replacing it affects the next request, never one in flight.
    cdef public object observer
    # Requests whose head was parsed (refused ones included) since the state was made; the
    # supervisor recycles a worker after N of them.
    cdef readonly long long requests_total
    # Handlers running now (a handler that switched the connection to WebSocket counts until it
    # returns): the "running requests" of limit_concurrency.
    cdef readonly Py_ssize_t requests_active
    # 503 for a request while more than this many connections are open or this many handlers
    # run (0: no limit).
    cdef readonly Py_ssize_t limit_concurrency
    # 503 and close for a connection from a host that already has this many open (0: no limit);
    # the counts, host -> open connections, and which host each counted stream went under.
    cdef readonly Py_ssize_t limit_connections_per_ip
    cdef dict _per_ip
    cdef dict _counted
    # PROXY protocol (HAProxy's v1/v2) before each connection's HTTP, from trusted peers only:
    # ``proxy_trusted(host: str) -> bool``, asked once per connection ("unix:" for a Unix socket
    # peer).  The default trusts loopback peers and Unix sockets.
    cdef readonly bint proxy_protocol
    cdef public object proxy_trusted

    # Count ``stream`` under ``host`` unless that host already has limit_connections_per_ip open
    # connections: 1 admitted, 0 refused.  ``leave`` uncounts it.
    cdef int admit(self, object stream, object host) except -1


cdef class ClientState:
    cdef readonly object loop
    cdef readonly ParserLimits limits
    cdef readonly Py_ssize_t max_trailer_bytes
    cdef readonly Py_ssize_t max_interim_responses
    cdef readonly Py_ssize_t read_high        # unread response body buffered before reading pauses
    cdef readonly Py_ssize_t read_low         # reading resumes at or below this
    cdef readonly Py_ssize_t write_high       # transport write buffer: pause_writing above
    cdef readonly Py_ssize_t write_low
    cdef readonly Py_ssize_t recv_initial, recv_max
    cdef readonly Py_ssize_t read_chunk       # free bytes offered to each socket read
    cdef readonly double keepalive_s          # an idle pooled connection closes after this
