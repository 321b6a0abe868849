# cython: language_level=3
"""Contract of what the connections of one server, or of one client, share: the configuration
copied into C fields once (read on the hot path without attribute look-ups), the loop and, for a
server, the app's entry point and the registry of live connections that shutdown walks.

Every default lives in ``cyserve.config`` (``ServerConfig``, ``ClientLimits``): these classes only
copy, never default.  Both are immutable after construction but for the server's shutdown flag.
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
    cdef object _idle                    # future resolved when connections empties during shutdown


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
