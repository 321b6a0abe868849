# cython: language_level=3
"""Contract of the state one listening server shares with all its connections: the
configuration copied into C fields (read on the hot path without Python attribute look-ups),
the application entry point, and the set of live connections that shutdown walks.

The connections are kept as plain objects: shutdown asks each one to ``begin_shutdown()`` or
``abort()``, so this module needs nothing from ``protocol`` (no circular cimport)."""
from cyserve._core.http.parser cimport ParserLimits

# Free bytes get_buffer() asks the receive buffer for before each read.
cdef enum:
    MIN_READ_BYTES = 4096


cdef class ServerState:
    cdef readonly object entry           # async (conn, Head, body: bytes | BodyStream) -> None
    cdef readonly object loop
    cdef readonly set connections        # live connections (protocol.HTTPServerCore)
    cdef readonly bint shutting_down
    cdef readonly ParserLimits limits
    cdef readonly Py_ssize_t max_body_bytes
    cdef readonly Py_ssize_t max_trailer_bytes
    cdef readonly Py_ssize_t max_pipeline_bytes
    cdef readonly Py_ssize_t max_keepalive_requests
    cdef readonly double first_request_s, head_s, body_idle_s, keepalive_s
    cdef readonly Py_ssize_t write_high, write_low, body_high, body_low
    cdef readonly Py_ssize_t recv_initial, recv_max
    cdef readonly object server_name
    cdef object _idle                    # future resolved when connections empties during shutdown

    # A connection is gone: drop it, and wake wait_closed() when it was the last one.
    cdef int forget(self, object conn) except -1
