# cython: language_level=3
"""The per-connection lazy deadline (see timer.pxd)."""
cimport cython
from libc.time cimport time_t

cdef extern from "time.h" nogil:
    ctypedef int clockid_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(clockid_t clk_id, timespec* tp)
    clockid_t CLOCK_MONOTONIC

# Deadlines closer than this to the pending timer reuse it instead of re-arming.
cdef double _SLACK_S = 0.001


cdef double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


@cython.final
cdef class Deadline:
    """``Deadline(loop, on_expiry)``: ``on_expiry(kind)`` runs once the deadline passes."""

    def __cinit__(self, loop, on_expiry):
        self._loop = loop
        self._on_expiry = on_expiry
        self.at = 0
        self.kind = 0
        self._handle = None

    cdef int set(self, int kind, double seconds) except -1:
        cdef double at
        self.kind = kind
        if kind == 0 or seconds <= 0:
            self.at = 0
            return 0
        at = monotonic() + seconds
        self.at = at
        if self._handle is not None:
            if self._handle_at <= at + _SLACK_S:
                return 0  # the pending timer fires first and re-arms for the rest
            self._handle.cancel()
        self._handle_at = at
        self._handle = self._loop.call_later(seconds, self._fire)
        return 0

    cdef int bump(self, double seconds) except -1:
        if self.kind != 0:
            self.set(self.kind, seconds)
        return 0

    cdef int cancel(self) except -1:
        self.at = 0
        self.kind = 0
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        return 0

    def _fire(self):
        cdef double now = monotonic()
        cdef int kind = self.kind
        self._handle = None
        if self.at == 0:
            return
        if now + _SLACK_S < self.at:
            self._handle_at = self.at
            self._handle = self._loop.call_later(self.at - now, self._fire)
            return
        self.at = 0
        self.kind = 0
        self._on_expiry(kind)

    # Python face, for tests.
    def py_set(self, int kind, double seconds) -> None:
        self.set(kind, seconds)

    def py_cancel(self) -> None:
        self.cancel()


def py_monotonic() -> float:
    """The clock deadlines use (CLOCK_MONOTONIC seconds)."""
    return monotonic()
