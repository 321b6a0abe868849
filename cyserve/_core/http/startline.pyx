# cython: language_level=3
"""Start-line scanners: the request line (server mode) and the status line (client mode).

Pure C over the head's bytes, called once per head by ``parser``; each returns an
``grammar.ParseError`` code and fills a ``StartLine`` (see ``startline.pxd`` for the contract).
"""
cimport cython
from libc.string cimport memchr, memcmp

from cyserve._core.http.grammar cimport (
    C_DIGIT, C_TARGET, C_TCHAR, C_VALUE, CLASS, CR, LF, SP, absolute_path_start, scan_authority,
)
from cyserve._core.http.grammar cimport (
    E_BARE_CR, E_OK, E_METHOD, E_REASON, E_REQUEST_LINE_TOO_LONG, E_STATUS, E_TARGET,
    E_TARGET_FORM, E_VERSION, E_VERSION_UNSUPPORTED,
)


cdef inline int _method_id(const unsigned char* d, Py_ssize_t n) noexcept:
    # Methods are case-sensitive (RFC 9110 §9.1): compare bytes exactly.
    if n == 3:
        if memcmp(d, b"GET", 3) == 0:
            return M_GET
        if memcmp(d, b"PUT", 3) == 0:
            return M_PUT
    elif n == 4:
        if memcmp(d, b"POST", 4) == 0:
            return M_POST
        if memcmp(d, b"HEAD", 4) == 0:
            return M_HEAD
    elif n == 5:
        if memcmp(d, b"PATCH", 5) == 0:
            return M_PATCH
        if memcmp(d, b"TRACE", 5) == 0:
            return M_TRACE
    elif n == 6:
        if memcmp(d, b"DELETE", 6) == 0:
            return M_DELETE
    elif n == 7:
        if memcmp(d, b"OPTIONS", 7) == 0:
            return M_OPTIONS
        if memcmp(d, b"CONNECT", 7) == 0:
            return M_CONNECT
    return M_OTHER


cdef inline int _scan_version(const unsigned char* d, Py_ssize_t p, int* version) noexcept:
    """HTTP-version = "HTTP/" DIGIT "." DIGIT at d[p:p+8] (RFC 9112 §2.3; the name is
    case-sensitive).  Reads stop at the first mismatch, so they never pass the line's CR.
    HTTP/1.0 -> 10; HTTP/1.1 and any higher 1.x -> 11, since a recipient processes a higher minor
    version as the highest it implements (RFC 9110 §6.2); another major version -> 505."""
    if not (d[p] == b'H' and d[p + 1] == b'T' and d[p + 2] == b'T' and d[p + 3] == b'P'
            and d[p + 4] == b'/' and (CLASS[d[p + 5]] & C_DIGIT) and d[p + 6] == b'.'
            and (CLASS[d[p + 7]] & C_DIGIT)):
        return E_VERSION
    if d[p + 5] != b'1':
        return E_VERSION_UNSUPPORTED
    version[0] = 10 if d[p + 7] == b'0' else 11
    return E_OK


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int scan_request_line(const unsigned char* d, Py_ssize_t n, Py_ssize_t max_line,
                           StartLine* sl) noexcept:
    """request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3).

    Exactly one SP between the parts: the RFC's lenient whitespace parsing is a MAY and we decline
    it.  The caller guarantees d ends with CR LF CR LF, and each loop below stops at a CR, so no
    read passes the end."""
    cdef Py_ssize_t p = 0, t, cr
    cdef const unsigned char* q = <const unsigned char*>memchr(d, CR, <size_t>n)
    cdef int err
    # 414 first, whatever else is wrong with the line (the scanner decides the same way).
    if q - d > max_line:
        return E_REQUEST_LINE_TOO_LONG
    while CLASS[d[p]] & C_TCHAR:
        p += 1
    if p == 0 or d[p] != SP:
        return E_METHOD
    sl.method_end = p
    sl.method_id = _method_id(d, p)
    t = p + 1
    p = t
    while CLASS[d[p]] & C_TARGET:
        p += 1
    sl.target_start = t
    sl.target_end = p
    if p > t and d[p] == CR:
        return E_VERSION           # "GET /": no HTTP-version (HTTP/0.9 is not spoken)
    if p == t or d[p] != SP:
        return E_TARGET
    err = _scan_version(d, p + 1, &sl.version)
    cr = p + 9
    if err == E_VERSION or (err == E_OK and d[cr] != CR):
        return E_VERSION
    if err != E_OK:
        return err
    if d[cr + 1] != LF:
        return E_BARE_CR
    sl.fields_start = cr + 2
    q = <const unsigned char*>memchr(d + t, b'?', <size_t>(sl.target_end - t))
    sl.query_start = (q - d) + 1 if q != NULL else -1
    # request-target forms (RFC 9112 §3.2): origin-form for every method but CONNECT;
    # authority-form only and always for CONNECT (§3.2.3, RFC 9110 §9.3.6); asterisk-form only
    # for OPTIONS (§3.2.4); absolute-form (§3.2.2) with an http or https URI (RFC 9110 §4.2).
    if sl.method_id == M_CONNECT:
        if not scan_authority(d, t, sl.target_end, True):
            return E_TARGET_FORM
        return E_OK
    if d[t] == b'/':
        return E_OK
    if sl.target_end - t == 1 and d[t] == b'*':
        return E_OK if sl.method_id == M_OPTIONS else E_TARGET_FORM
    if absolute_path_start(d, t, sl.target_end) >= 0:
        return E_OK
    return E_TARGET_FORM


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int scan_status_line(const unsigned char* d, StartLine* sl) noexcept:
    """status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4).

    The SP after the status code is required even when the reason is empty."""
    cdef Py_ssize_t p
    cdef int err = _scan_version(d, 0, &sl.version)
    if err != E_OK:
        return err
    if d[8] != SP:
        return E_VERSION
    if not (CLASS[d[9]] & C_DIGIT and CLASS[d[10]] & C_DIGIT and CLASS[d[11]] & C_DIGIT):
        return E_STATUS
    sl.status = (d[9] - 48) * 100 + (d[10] - 48) * 10 + (d[11] - 48)
    if sl.status < 100 or sl.status > 599 or d[12] != SP:
        return E_STATUS
    p = 13
    while CLASS[d[p]] & C_VALUE:
        p += 1
    if d[p] != CR:
        return E_REASON
    if d[p + 1] != LF:
        return E_BARE_CR
    sl.reason_start = 13
    sl.reason_end = p
    sl.fields_start = p + 2
    return E_OK
