# cython: language_level=3
"""The read gate: pause reasons to one pause/resume decision (see readgate.pxd)."""
cimport cython


@cython.final
cdef class ReadGate:
    """Reasons to stop reading (bits) and what the transport was last told."""

    def __cinit__(self):
        self.transport = None
        self.reasons = 0

    cdef int hold(self, unsigned int reason) except -1:
        self.reasons |= reason
        if self.paused or self._closed or self.transport is None:
            return 0
        self.paused = True
        self.transport.pause_reading()
        return 1

    cdef int release(self, unsigned int reason) except -1:
        self.reasons &= ~reason
        if self.reasons or not self.paused or self._closed or self.transport is None:
            return 0
        self.paused = False
        self.transport.resume_reading()
        return 1

    cdef int release_all(self) except -1:
        return self.release(self.reasons)

    cdef int close(self) except -1:
        self._closed = True
        return 0

    # Python face, for tests.
    def py_hold(self, unsigned int reason) -> bool:
        return self.hold(reason) == 1

    def py_release(self, unsigned int reason) -> bool:
        return self.release(reason) == 1


PY_PAUSE_BACKLOG = PAUSE_BACKLOG
PY_PAUSE_QUEUE = PAUSE_QUEUE
PY_PAUSE_APP = PAUSE_APP
