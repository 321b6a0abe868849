# cython: language_level=3
"""Byte classes of the head grammar: the ``CLASS`` and ``LOWER`` tables ``chars.pxd`` declares.

Filled once at import and read-only afterwards.  The helpers that read them are ``cdef inline`` in
``chars.pxd``, so they compile into each scanning loop that uses them.
"""


cdef void _init_tables() noexcept:
    cdef int c
    cdef bytes tchar_extra = b"!#$%&'*+-.^_`|~"
    cdef bytes host_extra = b"-._~!$&'()*+,;=%"
    for c in range(256):
        LOWER[c] = c + 32 if 65 <= c <= 90 else c
        CLASS[c] = 0
        if (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122):
            CLASS[c] |= C_TCHAR | C_HOST | C_IPLIT
        if 48 <= c <= 57:
            CLASS[c] |= C_DIGIT
        if c == HTAB or 32 <= c <= 126 or c >= 128:
            CLASS[c] |= C_VALUE
        if 33 <= c <= 126 and c != 35:
            # "#" too is refused: a request-target carries no fragment (RFC 9112 §3.2).
            CLASS[c] |= C_TARGET
    for c in tchar_extra:
        CLASS[c] |= C_TCHAR
    for c in host_extra:
        CLASS[c] |= C_HOST | C_IPLIT
    CLASS[58] |= C_IPLIT   # ":"


_init_tables()
