# cython: language_level=3
"""Parser limits and the incremental head scanner (the first stage of the head parser).

``HeadScanner.find_end`` looks for CRLF CRLF in a growing buffer, resuming where it stopped, and
enforces the size limits (414, 431) and the bare-LF rule (RFC 9112 §2.2) before a head is whole.
The second stage, parsing the whole head, is ``parser.parse_request`` / ``parse_response``.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memchr

from cyserve._core.http.grammar cimport CR, LF
from cyserve._core.http.grammar cimport (
    E_BARE_LF, E_HEAD_TOO_LONG, E_REQUEST_LINE_TOO_LONG, raise_error,
)

# config.py sits with errors.py at the bottom of the tree (it imports nothing of cyserve): the
# core reads its defaults, never repeats them (DESIGN: "Cython reads these; repeats none").
from cyserve.config import Limits as _Limits


# ---------------------------------------------------------------------------------------------
# ParserLimits

@cython.final
cdef class ParserLimits:

    def __init__(self, max_request_line_bytes=None, max_head_bytes=None, max_header_count=None):
        # A value not given is the server's default: written once, in cyserve.config.Limits.
        if max_request_line_bytes is None or max_head_bytes is None or max_header_count is None:
            defaults = _Limits()
            if max_request_line_bytes is None:
                max_request_line_bytes = defaults.max_request_line_bytes
            if max_head_bytes is None:
                max_head_bytes = defaults.max_head_bytes
            if max_header_count is None:
                max_header_count = defaults.max_header_count
        if max_request_line_bytes <= 0 or max_head_bytes <= 0 or max_header_count <= 0:
            raise ValueError("ParserLimits values must be positive")
        if max_request_line_bytes > max_head_bytes:
            raise ValueError("max_request_line_bytes cannot exceed max_head_bytes")
        if max_head_bytes >= 2**31:
            raise ValueError("max_head_bytes must stay below 2 GiB (header offsets are 32-bit)")
        self.max_request_line_bytes = max_request_line_bytes
        self.max_head_bytes = max_head_bytes
        self.max_header_count = max_header_count

    @staticmethod
    def from_config(limits):
        return ParserLimits(limits.max_request_line_bytes, limits.max_head_bytes,
                            limits.max_header_count)

    def __repr__(self):
        return (f"ParserLimits(max_request_line_bytes={self.max_request_line_bytes}, "
                f"max_head_bytes={self.max_head_bytes}, max_header_count={self.max_header_count})")


cdef ParserLimits _DEFAULT_LIMITS = ParserLimits()


# ---------------------------------------------------------------------------------------------
# HeadScanner

@cython.final
cdef class HeadScanner:
    """States: before the first line's LF (``_line_seen`` false), then inside the field lines.

    The search jumps from LF to LF (memchr) and looks *behind* each one: the byte before must be CR
    (else a bare LF, RFC 9112 §2.2) and the one before that an LF for CRLF CRLF.  Because the check
    reads backwards, a CRLF CRLF straddling two calls is found from the LF that completes it, so a
    call resumes exactly at ``_scanned`` with nothing re-read.  Every error is tied to a byte
    position and the bytes are examined in order, so any split of the input gives the same verdict.
    """

    def __cinit__(self, ParserLimits limits=None, bint response_mode=False):
        # __cinit__, not __init__: even HeadScanner.__new__ from Cython gets usable limits.
        self.limits = limits if limits is not None else _DEFAULT_LIMITS
        self.response_mode = response_mode
        self._scanned = 0
        self._line_seen = False

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef Py_ssize_t find_end(self, const unsigned char* data, Py_ssize_t length) except -2:
        cdef Py_ssize_t max_head = self.limits.max_head_bytes
        cdef Py_ssize_t max_line = self.limits.max_request_line_bytes
        # A head is at most max_head bytes, so no byte at or past that index is ever examined.
        cdef Py_ssize_t limit = length if length < max_head else max_head
        cdef Py_ssize_t line_limit
        cdef Py_ssize_t i = self._scanned
        cdef const unsigned char* lf
        if i > length:      # the caller restarted with a shorter buffer: start over
            i = 0
            self._line_seen = False
        if not self._line_seen:
            # The request line (without CRLF) may hold max_line bytes (RFC 9112 §3: 414 for a
            # too-long request-target), so its CR is at index max_line and its LF at
            # max_line + 1 at the latest; no index past that is examined before it is seen.
            line_limit = limit
            if not self.response_mode and max_line + 2 < line_limit:
                line_limit = max_line + 2
            lf = NULL
            if i < line_limit:
                lf = <const unsigned char*>memchr(data + i, LF, <size_t>(line_limit - i))
            if lf == NULL:
                if line_limit > i:
                    self._scanned = line_limit
                if not self.response_mode and length > max_line and (
                        data[max_line] != CR or length > max_line + 1):
                    raise_error(E_REQUEST_LINE_TOO_LONG)
                if length >= max_head:
                    raise_error(E_HEAD_TOO_LONG)
                return -1
            i = lf - data
            if i == 0 or data[i - 1] != CR:
                # Index max_line is examined before the LF after it: 414 wins, as in any split.
                if not self.response_mode and i > max_line:
                    raise_error(E_REQUEST_LINE_TOO_LONG)
                raise_error(E_BARE_LF)
            self._line_seen = True
            i += 1
        while i < limit:
            lf = <const unsigned char*>memchr(data + i, LF, <size_t>(limit - i))
            if lf == NULL:
                break
            i = lf - data
            # i >= 2 here: the first line's CR LF lies before it.
            if data[i - 1] != CR:
                raise_error(E_BARE_LF)
            if data[i - 2] == LF:
                self._scanned = i    # a repeated call finds this same end again
                return i + 1
            i += 1
        self._scanned = limit
        # The last index a head may end at is max_head - 1: once it is examined, 431.
        if length >= max_head:
            raise_error(E_HEAD_TOO_LONG)
        return -1

    cpdef void reset(self) noexcept:
        self._scanned = 0
        self._line_seen = False

    def feed(self, bytes data not None):
        return self.find_end(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    def __repr__(self):
        return (f"HeadScanner(scanned={self._scanned}, line_seen={bool(self._line_seen)}, "
                f"response_mode={bool(self.response_mode)})")
