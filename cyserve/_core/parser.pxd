# cython: language_level=3
"""Contract of the head parser: find the end of a head, then parse it in one C pass.

Server and client share it (DESIGN principle 3): ``parse_request`` reads a request line,
``parse_response`` a status line; the header rules, limits and framing decision are common.

Ownership: a ``Head`` keeps ``raw``, one owned ``bytes`` copy of the whole head including its final
CRLF CRLF; every offset below indexes into ``raw``.  ``_offsets`` is PyMem-allocated by the parser
and freed in ``Head.__dealloc__``.
"""
cimport cython
from libc.stdint cimport uint32_t

# How the body that follows a head is delimited (RFC 9112 §6.3).  ``cpdef`` so Python sees the same
# numbers as module-level ints (``parser.FRAMING_CHUNKED``).
cpdef enum:
    FRAMING_NONE = 0      # no body
    FRAMING_LENGTH = 1    # Content-Length bytes follow
    FRAMING_CHUNKED = 2   # chunked transfer coding
    FRAMING_CLOSE = 3     # response mode only: the body runs until the connection closes


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


@cython.final
cdef class Head:
    """One parsed message head: lazily turned into Python objects when a handler asks."""
    cdef readonly bytes raw
    cdef readonly int version            # 10 (HTTP/1.0) or 11 (HTTP/1.1)
    # request mode
    cdef readonly str method             # interned str for the registered methods
    cdef Py_ssize_t _target_start, _target_end
    cdef Py_ssize_t _query_start         # index of the byte after '?', or -1 when no query
    # response mode
    cdef readonly int status             # 0 in request mode
    cdef Py_ssize_t _reason_start, _reason_end
    # framing and connection (decided by the parser, RFC 9112 §6.3 / §9.3)
    cdef readonly int framing            # one of FRAMING_*
    cdef readonly long long content_length   # -1 unless framing == FRAMING_LENGTH
    cdef readonly bint keep_alive
    cdef readonly bint expect_continue   # Expect: 100-continue on an HTTP/1.1 request
    cdef readonly bint upgrade           # Connection: upgrade together with an Upgrade field
    # header fields: 4 offsets each (name start, name end, value start, value end), OWS trimmed
    cdef readonly Py_ssize_t header_count
    cdef uint32_t* _offsets
    cdef list _items_cache               # built by header_items() on first use


# Parse a complete head (``raw`` ends with CRLF CRLF, as ``HeadScanner.find_end`` delimits it).
# Raise ProtocolError with the status to answer on any violation.
cdef Head parse_request(bytes raw, ParserLimits limits)
# ``head_request``: the request was HEAD, so the response has no body whatever its fields say.
cdef Head parse_response(bytes raw, ParserLimits limits, bint head_request)
