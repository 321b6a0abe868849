# cython: language_level=3
"""Contract of the body stream: a role feeds it, a handler (or a client's caller) reads it.

The stream is the one owner of a body's read backpressure (DESIGN principle 5): feeding past
``high`` unread bytes holds the connection's reading (``PAUSE_BACKLOG``), reading it down to
``low`` releases it.  Its first read calls the owner's ``on_first_read`` (if any) so a pending
``100 Continue`` is sent only when a handler actually wants the body (RFC 9110 §10.1.1).

States: open -> eof | failed.  A failed body raises its exception on every later read.
"""
from cyserve._core.io.stream cimport Stream

ctypedef int (*first_read_fn)(object owner) except -1


cdef class BodyStream:
    cdef Stream _stream               # whose reading this body holds back
    cdef Py_ssize_t _high, _low
    cdef object _owner
    cdef first_read_fn _on_first_read
    cdef object _chunks               # collections.deque of bytes
    cdef object _waiter               # future a reader awaits while no chunk is buffered, else None
    cdef object _exc                  # the exception every later read raises, else None
    cdef readonly Py_ssize_t buffered # bytes fed and not yet read
    cdef readonly bint eof            # the last byte of the body was fed
    cdef bint _wanted

    cdef int feed(self, bytes data) except -1
    cdef int feed_eof(self) except -1
    cdef int fail(self, object exc) except -1
    # Everything buffered, joined, without waiting (a whole body that arrived in one pass).
    cdef bytes take_all(self)
    # The role stops feeding (its handler is done): let go of the connection's reading.
    cdef int detach(self) except -1
    cdef int _taken(self, Py_ssize_t n) except -1
    cdef int _wake(self) except -1


cdef BodyStream new_body(Stream stream, Py_ssize_t high, Py_ssize_t low, object owner,
                         first_read_fn on_first_read)
