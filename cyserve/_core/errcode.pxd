# cython: language_level=3
"""Contract of the head's error codes: what the C walks return instead of raising.

``startline`` and ``fields`` return a ``HeadError`` from their pure-C loops and ``parser`` turns it
into an exception with ``raise_error`` only after the loop, so the loops never touch Python
objects; ``scanner.find_end`` calls ``raise_error`` itself once its memchr walk has stopped.
"""

cdef enum HeadError:
    E_OK = 0
    E_NOMEM
    E_NOT_ONE_HEAD
    E_BARE_LF
    E_BARE_CR
    E_REQUEST_LINE_TOO_LONG
    E_HEAD_TOO_LONG
    E_TOO_MANY_FIELDS
    E_METHOD
    E_TARGET
    E_TARGET_FORM
    E_VERSION
    E_VERSION_UNSUPPORTED
    E_STATUS
    E_REASON
    E_OBS_FOLD
    E_NAME
    E_SPACE_BEFORE_COLON
    E_NO_COLON
    E_VALUE
    E_CL_INVALID
    E_CL_DUPLICATE
    E_CL_AND_TE
    E_TE_HTTP10
    E_TE_MALFORMED
    E_TE_CHUNKED_NOT_LAST
    E_TE_UNKNOWN
    E_HOST_MISSING
    E_HOST_DUPLICATE
    E_HOST_INVALID

# Always raises (callers pass a code other than E_OK): ProtocolError(message, status) for the
# peer's mistakes, MemoryError for E_NOMEM, ValueError for E_NOT_ONE_HEAD (a caller's mistake).
cdef int raise_error(int err) except -1
