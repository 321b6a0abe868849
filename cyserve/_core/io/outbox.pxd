# cython: language_level=3
"""Contract of the outbox: the one way bytes leave a connection, whatever protocol writes them.

- Coalescing: while ``corked`` (the stream is inside one read pass) writes queue and leave as one
  ``transport.write`` when the pass ends (``uncork``), or as soon as FLUSH_BYTES are queued, so
  the transport's water marks still see a producer that never yields.
- Write backpressure (DESIGN principle 5): the loop's ``pause_writing``/``resume_writing`` land in
  ``pause``/``resume``; ``drain()`` returns an already-done awaitable unless paused, so the
  common case makes no future.
- ``buffered()``: bytes written and not yet on the wire (queued here plus the transport's
  buffer), a number other pieces read (the stream's stall watch, a WebSocket's send queue).

``drain()`` also notices a transport that failed a send (a reset peer) before the loop reports
the connection lost, so a producer that never suspends still stops.

States: open -> closed.  Once closed (the connection is closing or gone) nothing more is written:
``send`` and ``drain`` raise a copy of ``error`` (Disconnected unless the owner set another;
a copy, see ``cyserve.errors.again``).
"""

cdef class Ready:
    """An awaitable that is already done: ``drain()`` while writing is not paused."""


cdef class Outbox:
    cdef object transport
    cdef list _queue                  # bytes written while corked, in order
    cdef Py_ssize_t _queued           # their total size
    cdef readonly bint corked
    cdef readonly bint paused         # the transport is above its high water mark
    cdef readonly bint closed
    cdef object error                 # what send() and drain() raise once closed
    cdef object _waiter               # the future drain() handed out while paused, or None
    cdef object _loop

    cdef int send(self, bytes data) except -1
    # Three pieces as one write when not corked (writelines: one vectored send for a large
    # body piece between its framing, with no joined copy).
    cdef int send3(self, bytes a, bytes b, bytes c) except -1
    cdef inline int cork(self) except -1:
        self.corked = True
        return 0
    # Flush what queued while corked (one transport.write).
    cdef inline int uncork(self) except -1:
        self.corked = False
        if self._queued:
            return self.flush()
        return 0
    cdef int flush(self) except -1
    cdef int pause(self) except -1
    cdef int resume(self) except -1
    # Resolve a drain() waiter without resuming: the writer looks again at why it writes (a
    # client whose response arrived early stops uploading).
    cdef int wake(self) except -1
    # Flush, then refuse further writes with ``error`` (the connection is closing).
    cdef int close(self, object error) except -1
    # The connection is gone: drop what is queued and fail a drain() waiter with ``error``.
    cdef int lost(self, object error) except -1
    cdef object drain(self)
    cdef Py_ssize_t buffered(self) except -1


# The shared already-done awaitable.
cdef Ready READY
