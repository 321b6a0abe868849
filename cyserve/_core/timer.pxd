# cython: language_level=3
"""Contract of the per-connection deadline: one lazy loop timer.

The deadline moves freely on every request (a C clock read, no loop call); the loop is asked for a
timer only when none is pending or the new deadline is earlier than the pending one.  When the
timer fires early (the deadline moved later meanwhile) it re-arms for the rest.  So a kept-alive
connection serving many requests creates about one loop timer per timeout period, not one per
request.  ``kind`` is the owner's label for what the deadline guards; 0 means none.
"""

cdef double monotonic() noexcept nogil


cdef class Deadline:
    cdef object _loop
    cdef object _on_expiry            # called with the kind when the deadline passes
    cdef readonly double at           # monotonic seconds, 0 when no deadline is set
    cdef readonly int kind
    cdef object _handle               # the pending loop TimerHandle, or None
    cdef double _handle_at

    # Guard ``kind`` for ``seconds`` from now.  Kind 0 or seconds <= 0 sets no deadline (a pending
    # timer then fires as a no-op); ``kind`` is recorded either way, so the owner sees what it guards.
    cdef int set(self, int kind, double seconds) except -1
    # Move the current deadline to ``seconds`` from now, keeping its kind (idle timeouts).
    cdef int bump(self, double seconds) except -1
    # Clear the deadline and drop the loop timer (the connection is gone).
    cdef int cancel(self) except -1
