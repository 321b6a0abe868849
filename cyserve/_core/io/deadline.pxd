# cython: language_level=3
"""Contract of the connection's deadlines: a few named slots behind one lazy loop timer.

Every timeout of a connection lives here, whatever protocol drives it: the stream's input watch
(first request, head, body idle, keep-alive; the client's read), its output stall watch, the
role's own (a handler's run time, a client's total), and a lingering close.  A slot moves freely
(a C clock read, no loop call); the loop is asked for a timer only when none is pending or the
earliest slot is now earlier than the pending timer.  When the timer fires early (slots moved
later meanwhile) it re-arms for the rest.  So a kept-alive connection serving many requests makes
about one loop timer per timeout period, not one per request.

Expiry goes to the owner through a C function pointer (no Python call, no inheritance): the owner
is the ``Stream`` that composes this deadline.  ``cancel()`` drops the timer and the owner, so a
closed connection leaves no reference cycle behind.
"""

cdef enum:
    SLOT_INPUT = 0      # bytes are expected from the peer (the stream's input watch)
    SLOT_OUTPUT = 1     # written bytes must make progress (the stream's stall watch)
    SLOT_ROLE = 2       # the current role's own deadline (handler run time, client total)
    SLOT_LINGER = 3     # a lingering close ends by then
    SLOT_COUNT = 4

ctypedef int (*expiry_fn)(object owner, int slot) except -1

# CLOCK_MONOTONIC seconds: the clock every deadline is kept in.
cdef double monotonic() noexcept nogil


cdef class Deadline:
    cdef object _loop
    cdef object _owner                  # passed to _on_expiry; None once cancelled
    cdef expiry_fn _on_expiry
    cdef double _at[SLOT_COUNT]         # monotonic seconds per slot, 0 when unset
    cdef object _handle                 # the pending loop TimerHandle, or None
    cdef double _handle_at

    # Arm ``slot`` for ``seconds`` from now; ``seconds`` <= 0 clears it.
    cdef int set(self, int slot, double seconds) except -1
    cdef int clear(self, int slot) except -1
    # Move an armed slot to ``seconds`` from now (idle timeouts); an unset slot stays unset.
    cdef int bump(self, int slot, double seconds) except -1
    cdef inline bint armed(self, int slot) noexcept:
        return self._at[slot] != 0
    # Clear every slot, drop the loop timer and the owner (the connection is gone).
    cdef int cancel(self) except -1
    cdef int _arm(self, double at) except -1


# A deadline whose expiries call ``on_expiry(owner, slot)``; ``loop`` None makes one that never
# touches a loop (tests driving slots by hand).
cdef Deadline new_deadline(object loop, object owner, expiry_fn on_expiry)
