# cython: language_level=3
"""A connection's deadlines: named slots behind one lazy loop timer (see deadline.pxd)."""
cimport cython
from libc.time cimport time_t

cdef extern from "time.h" nogil:
    ctypedef int clockid_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(clockid_t clk_id, timespec* tp)
    clockid_t CLOCK_MONOTONIC

# A slot due within this of the pending timer reuses it instead of re-arming the loop.
cdef double _SLACK_S = 0.001


cdef double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


@cython.final
cdef class Deadline:
    """Built by its owner (``Deadline.__new__`` + ``_bind``); see deadline.pxd."""

    def __cinit__(self):
        cdef int i
        for i in range(SLOT_COUNT):
            self._at[i] = 0
        self._handle = None
        self._owner = None
        self._on_expiry = NULL

    cdef int set(self, int slot, double seconds) except -1:
        cdef double at
        if seconds <= 0:
            self._at[slot] = 0
            return 0
        at = monotonic() + seconds
        self._at[slot] = at
        if self._handle is not None and self._handle_at <= at + _SLACK_S:
            return 0  # the pending timer fires first and re-arms for the rest
        self._arm(at)
        return 0

    cdef int clear(self, int slot) except -1:
        # The pending timer, if any, stays: when it fires it finds nothing due and re-arms for
        # whatever is left (or nothing), which costs less than cancelling it now.
        self._at[slot] = 0
        return 0

    cdef int bump(self, int slot, double seconds) except -1:
        if self._at[slot] != 0:
            self.set(slot, seconds)
        return 0

    cdef int cancel(self) except -1:
        cdef int i
        for i in range(SLOT_COUNT):
            self._at[i] = 0
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._owner = None
        self._on_expiry = NULL
        return 0

    cdef int _arm(self, double at) except -1:
        if self._loop is None:
            return 0
        if self._handle is not None:
            self._handle.cancel()
        self._handle_at = at
        self._handle = self._loop.call_later(max(at - monotonic(), 0.0), self._fire)
        return 0

    def _fire(self):
        cdef double now = monotonic() + _SLACK_S
        cdef double earliest = 0
        cdef int i, due = -1
        self._handle = None
        for i in range(SLOT_COUNT):
            if self._at[i] == 0:
                continue
            if self._at[i] <= now and due < 0:
                due = i
            elif earliest == 0 or self._at[i] < earliest:
                earliest = self._at[i]
        if due >= 0:
            self._at[due] = 0
            if earliest != 0:
                self._arm(earliest)   # later slots keep their timer
            if self._on_expiry != NULL:
                self._on_expiry(self._owner, due)
        elif earliest != 0:
            self._arm(earliest)

    # Python face, for tests.
    def py_set(self, int slot, double seconds) -> None:
        self.set(slot, seconds)

    def py_armed(self, int slot) -> bool:
        return self._at[slot] != 0

    def py_cancel(self) -> None:
        self.cancel()


cdef Deadline new_deadline(object loop, object owner, expiry_fn on_expiry):
    cdef Deadline d = Deadline.__new__(Deadline)
    d._loop = loop
    d._owner = owner
    d._on_expiry = on_expiry
    return d


def py_monotonic() -> float:
    """The clock deadlines use (CLOCK_MONOTONIC seconds)."""
    return monotonic()


PY_SLOT_INPUT = SLOT_INPUT
PY_SLOT_OUTPUT = SLOT_OUTPUT
PY_SLOT_ROLE = SLOT_ROLE
PY_SLOT_LINGER = SLOT_LINGER
