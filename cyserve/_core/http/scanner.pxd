# cython: language_level=3
"""Contract of the head scanner: the parser's size limits, and the incremental search for the end
of one head (RFC 9112 §2.1: a head ends at CRLF CRLF) that enforces them before a head is whole.

``parser`` takes a ``ParserLimits`` for the full parse; ``protocol`` holds one ``HeadScanner`` per
connection and calls ``find_end`` on every read until a head is complete.
"""
cimport cython


@cython.final
cdef class ParserLimits:
    """Size limits copied from ``cyserve.config.Limits`` (C fields, read on the hot path)."""
    cdef readonly Py_ssize_t max_request_line_bytes   # request line longer -> 414 (server mode)
    cdef readonly Py_ssize_t max_head_bytes           # whole head longer -> 431
    cdef readonly Py_ssize_t max_header_count         # more header fields -> 431


@cython.final
cdef class HeadScanner:
    """Incremental search for the end of one head over a growing buffer.

    Invariant: bytes before ``_scanned`` were already examined and hold no head end, so a head that
    arrives one byte at a time costs linear, not quadratic, time.  ``reset()`` before the next head.
    """
    cdef ParserLimits limits
    cdef bint response_mode          # status line: no 414 check
    cdef Py_ssize_t _scanned         # bytes of the current head already examined
    cdef bint _line_seen             # the first line's end has been seen

    # Returns the head's length (through the final CRLF CRLF) within data[0:length], or -1 when
    # more bytes are needed.  ``data`` always starts at the head's first byte and grows between calls.
    # Raises ProtocolError: 400 on a bare LF (RFC 9112 §2.2), 414 when the request line passes
    # max_request_line_bytes, 431 when the head passes max_head_bytes.
    cdef Py_ssize_t find_end(self, const unsigned char* data, Py_ssize_t length) except -2
    # ``cpdef`` so the Python face can call it too (tests, the client); a direct C call from Cython.
    cpdef void reset(self) noexcept
