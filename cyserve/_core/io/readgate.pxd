# cython: language_level=3
"""Contract of the read gate: named reasons to stop reading, one pause/resume decision.

Reading (DESIGN principle 5) pauses while any reason holds and resumes when the last one is
released; the transport hears only the transitions.  Reasons are bits, so each is held at most
once and releasing one never releases another.  ``close()`` freezes the gate (a closing
transport is never told to resume).
"""

cdef enum:
    PAUSE_BACKLOG = 1   # delivered input its consumer has not taken yet (a body above its mark)
    PAUSE_QUEUE = 2     # whole inputs wait behind the one being handled (pipelined requests)
    PAUSE_APP = 4       # the application asked (flow control it drives itself)


cdef class ReadGate:
    cdef object transport
    cdef readonly unsigned int reasons
    cdef readonly bint paused         # what the transport was last told
    cdef bint _closed

    # Each returns 1 when the transport was told to pause (resume), else 0.
    cdef int hold(self, unsigned int reason) except -1
    cdef int release(self, unsigned int reason) except -1
    cdef inline bint holds(self, unsigned int reason) noexcept:
        return (self.reasons & reason) != 0
    # Drop every reason and resume (a lingering close reads whatever comes).
    cdef int release_all(self) except -1
    cdef int close(self) except -1
