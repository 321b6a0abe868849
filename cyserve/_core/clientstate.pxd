# cython: language_level=3
"""Contract of ``ClientState``: what every connection of one ``Client`` shares.

Limits, water marks and the loop, copied into C fields once when the client binds to its loop;
read by the reading half (``respreader``: limits, read water marks, receive sizes) and by the
connection (``client``: write water marks, keep-alive).  Immutable after construction.
"""
from cyserve._core.http.parser cimport ParserLimits


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
