# cython: language_level=3
"""Contract of the request body stream: the core feeds it, a handler reads it.

Reading backpressure (DESIGN principle 5) lives with the connection: the stream reports every
byte that leaves it through ``BodyOwner._body_consumed`` so the connection can resume reading
below its low water mark, and its first read through ``BodyOwner._body_wanted`` so a pending
``100 Continue`` is sent only when a handler actually wants the body (RFC 9110 §10.1.1).
"""


cdef class BodyOwner:
    # n bytes were taken out of the stream by the handler.
    cdef int _body_consumed(self, Py_ssize_t n) except -1
    # the handler started reading the body.
    cdef int _body_wanted(self) except -1


cdef class BodyStream:
    """Chunks of one request body in arrival order.  States: open -> eof | failed."""
    cdef BodyOwner _owner
    cdef object _chunks          # collections.deque of bytes
    cdef object _waiter          # future a reader awaits while no chunk is buffered, else None
    cdef object _exc             # the exception every later read raises, else None
    cdef readonly Py_ssize_t buffered   # bytes fed and not yet read
    cdef readonly bint eof              # the last byte of the body was fed
    cdef bint _wanted

    cdef int feed(self, bytes data) except -1
    cdef int feed_eof(self) except -1
    cdef int fail(self, object exc) except -1
    # Everything buffered, joined, without waiting (the core's whole-body fast path).
    cdef bytes take_all(self)
    cdef int _wake(self) except -1
