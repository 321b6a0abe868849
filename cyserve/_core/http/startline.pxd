# cython: language_level=3
"""Contract of the start-line scanners: a request line (server mode) or a status line (client).

``parser`` calls one of the two functions once per head, before walking the field lines.  Both are
pure C: they return an ``grammar.ParseError`` code (``E_OK`` on success) and fill a ``StartLine``.
Both require the head to end with CR LF CR LF (``parser`` checks that first): every loop stops at
a CR, so no read passes the end.
"""

# The registered methods, recognised once so the parser can hand out interned ``str`` objects and
# apply the per-method request-target rules (RFC 9112 §3.2).
cdef enum Method:
    M_OTHER = 0
    M_GET
    M_HEAD
    M_POST
    M_PUT
    M_DELETE
    M_PATCH
    M_OPTIONS
    M_CONNECT
    M_TRACE


# Offsets index the head's bytes.  The caller initialises the fields the other mode leaves alone.
cdef struct StartLine:
    Py_ssize_t method_end           # method is d[0:method_end]
    int method_id                   # Method
    Py_ssize_t target_start, target_end
    Py_ssize_t query_start          # after "?", or -1
    int version                     # 10 or 11
    int status                      # response mode
    Py_ssize_t reason_start, reason_end
    Py_ssize_t fields_start         # first byte after the start line's CRLF


# request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3), in d[0:n].
# A line longer than max_line bytes (without CRLF) is E_REQUEST_LINE_TOO_LONG, whatever else is
# wrong with it; a request-target form the method does not allow is E_TARGET_FORM.
cdef int scan_request_line(const unsigned char* d, Py_ssize_t n, Py_ssize_t max_line,
                           StartLine* sl) noexcept
# status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4).
cdef int scan_status_line(const unsigned char* d, StartLine* sl) noexcept
