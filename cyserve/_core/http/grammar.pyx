# cython: language_level=3
"""The HTTP/1.1 grammar tables: the ``CLASS`` and ``LOWER`` byte tables ``grammar.pxd`` declares, and
the message and status of every ``ParseError`` code (head and chunked body) with the exception each
one becomes.

Filled once at import and read-only afterwards.  The helpers that read them are ``cdef inline`` in
``grammar.pxd``, so they compile into each scanning loop that uses them.
"""
from cyserve.errors import ProtocolError


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
            CLASS[c] |= C_DIGIT | C_HEXDIG
        if (65 <= c <= 70) or (97 <= c <= 102):
            CLASS[c] |= C_HEXDIG
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


# Indexed by ParseError: (message, status).  Statuses per RFC 9110 §15, RFC 9112 and RFC 6585 §5.
_MESSAGES = (
    ("ok", 0),
    ("out of memory", 0),
    ("raw must hold exactly one head ending with CRLF CRLF", 0),
    ("bare LF in head (RFC 9112 §2.2)", 400),
    ("bare CR in head (RFC 9112 §2.2)", 400),
    ("request line too long", 414),
    ("head too long", 431),
    ("too many header fields", 431),
    ("invalid method (RFC 9112 §3.1)", 400),
    ("invalid request-target (RFC 9112 §3.2)", 400),
    ("request-target form not allowed for this method (RFC 9112 §3.2)", 400),
    ("invalid HTTP version (RFC 9112 §2.3)", 400),
    ("HTTP version not supported (RFC 9110 §6.2)", 505),
    ("invalid status code (RFC 9112 §4)", 400),
    ("invalid reason phrase (RFC 9112 §4)", 400),
    ("obsolete line folding or whitespace before a field line (RFC 9112 §5.2, §2.2)", 400),
    ("invalid field name (RFC 9110 §5.1)", 400),
    ("whitespace between field name and colon (RFC 9112 §5.1)", 400),
    ("field line without colon (RFC 9112 §5)", 400),
    ("invalid character in field value (RFC 9110 §5.5)", 400),
    ("invalid Content-Length (RFC 9110 §8.6)", 400),
    ("duplicate Content-Length (RFC 9112 §6.3)", 400),
    ("Content-Length with Transfer-Encoding (RFC 9112 §6.1)", 400),
    ("Transfer-Encoding in an HTTP/1.0 message (RFC 9112 §6.1)", 400),
    ("malformed Transfer-Encoding (RFC 9112 §6.1)", 400),
    ("chunked is not the final transfer coding, or is repeated (RFC 9112 §6.3)", 400),
    ("unsupported transfer coding (RFC 9112 §6.1)", 501),
    ("missing Host (RFC 9112 §3.2)", 400),
    ("duplicate Host (RFC 9112 §3.2)", 400),
    ("invalid Host (RFC 9112 §3.2)", 400),
    ("too many empty elements in the Connection list (RFC 9110 §5.6.1)", 400),
    ("too many empty elements in the Expect list (RFC 9110 §5.6.1)", 400),
    ("too many empty elements in the Upgrade list (RFC 9110 §5.6.1)", 400),
    ("invalid character in chunk size (RFC 9112 §7.1: chunk-size = 1*HEXDIG)", 400),
    ("chunk size too large (above 2**62 - 1)", 400),
    ("chunk size line too long (over 4096 bytes before its CRLF, RFC 9112 §7.1.1)", 400),
    ("whitespace before CRLF in chunk size line (RFC 9112 §7.1.1 allows BWS only around ';' and "
     "'=')", 400),
    ("empty chunk extension name (RFC 9112 §7.1.1: chunk-ext-name = token)", 400),
    ("empty chunk extension value (RFC 9112 §7.1.1: chunk-ext-val = token / quoted-string)", 400),
    ("invalid character in chunk extension (RFC 9112 §7.1.1)", 400),
    ("invalid character in chunk extension quoted-string (RFC 9110 §5.6.4)", 400),
    ("DQUOTE inside a token chunk extension value (RFC 9112 §7.1.1: token / quoted-string)", 400),
    ("bare LF in chunked body (RFC 9112 §7.1: lines end with CRLF)", 400),
    ("chunk size line not ended by CRLF (RFC 9112 §7.1)", 400),
    ("chunk data not followed by CRLF (RFC 9112 §7.1)", 400),
    ("invalid character in trailer field name (RFC 9110 §5.1: field-name = token)", 400),
    ("whitespace before colon in trailer field (RFC 9112 §5.1)", 400),
    ("obs-fold or leading whitespace in trailer section (RFC 9112 §5.2)", 400),
    ("invalid character in trailer field value (RFC 9110 §5.5)", 400),
    ("trailer field line not ended by CRLF (RFC 9112 §7.1.2)", 400),
    ("trailer section too large", 431),
)
if len(_MESSAGES) != E_COUNT:
    raise ImportError(f"grammar: {len(_MESSAGES)} messages for {E_COUNT} ParseError codes")


cdef int raise_error(int err) except -1:
    if err == E_NOMEM:
        raise MemoryError()
    if err == E_NOT_ONE_HEAD:
        raise ValueError(_MESSAGES[err][0])
    message, status = _MESSAGES[err]
    raise ProtocolError(message, status)
