# cython: language_level=3
"""Contract of a parsed head: the ``Head`` view and the ``FRAMING_*`` codes it carries.

``parser`` fills every field below in one pass and owns the decisions (framing, keep-alive, Host,
Expect, Upgrade); ``head.pyx`` only turns the stored bytes and offsets into Python objects when a
handler asks for them.

Ownership: a ``Head`` keeps ``raw``, one owned ``bytes`` copy of the whole head including its final
CRLF CRLF; every offset below indexes into ``raw``.  ``_offsets`` is PyMem-allocated by the parser
and freed in ``Head.__dealloc__``.
"""
cimport cython
from libc.stdint cimport uint32_t

# How the body that follows a head is delimited (RFC 9112 §6.3).  ``cpdef`` so Python sees the same
# numbers as module-level ints (``head.FRAMING_CHUNKED``, re-exported as ``parser.FRAMING_CHUNKED``).
cpdef enum:
    FRAMING_NONE = 0      # no body
    FRAMING_LENGTH = 1    # Content-Length bytes follow
    FRAMING_CHUNKED = 2   # chunked transfer coding
    FRAMING_CLOSE = 3     # response mode only: the body runs until the connection closes


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
    cdef readonly bint upgrade           # Connection: upgrade and an Upgrade field naming a protocol
    # header fields: 4 offsets each (name start, name end, value start, value end), OWS trimmed
    cdef readonly Py_ssize_t header_count
    cdef uint32_t* _offsets
    cdef list _items_cache               # built by header_items() on first use
