# cython: language_level=3
"""HTTP/1.1 head parser: find the end of a head incrementally, then parse it in one C pass.

Two stages, both over raw bytes (DESIGN §"One request", steps 2-3):

1. ``HeadScanner.find_end`` looks for CRLF CRLF in a growing buffer, resuming where it stopped, and
   enforces the size limits (414, 431) and the bare-LF rule (RFC 9112 §2.2) before a head is whole.
2. ``parse_request`` / ``parse_response`` walk the whole head once: start line, then every field line
   into four uint32 offsets, deciding framing, keep-alive, Host, Expect and Upgrade on the way.
   Nothing Python is made in the walk; ``Head`` builds ``str`` objects only when a handler asks.

The scanning functions return an error code (``_Err``) instead of raising; the caller turns a code
into ``ProtocolError(message, status)`` after the walk, so the loops stay pure C.

Strictness follows RFC 9112/9110 wherever a recipient may choose; every choice that differs from
httptools (llhttp) or h11 is listed with its reason in ``tests/vectors/parser_differences.py``.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeLatin1
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy

from cyserve.errors import ProtocolError


cdef extern from "Python.h":
    # For an ASCII str this returns its own buffer: no allocation.
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL


# ---------------------------------------------------------------------------------------------
# Byte classes (filled once at import; read-only afterwards)

cdef enum:
    _CR = 13
    _LF = 10
    _SP = 32
    _HTAB = 9

cdef enum:
    _C_TCHAR = 1     # token characters (RFC 9110 §5.6.2)
    _C_VALUE = 2     # field-vchar, SP, HTAB (RFC 9110 §5.5); also reason-phrase (RFC 9112 §4)
    _C_TARGET = 4    # request-target bytes: VCHAR but "#"; no SP/CTL/non-ASCII (RFC 9112 §3.2)
    _C_HOST = 8      # reg-name: unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2)
    _C_DIGIT = 16
    _C_IPLIT = 32    # inside an IP-literal "[...]": HEXDIG, ":", ".", IPvFuture chars

cdef unsigned char _CLASS[256]
cdef unsigned char _LOWER[256]

# Content-Length values above this are refused: far below int64 overflow (RFC 9110 §8.6 asks
# recipients to guard against overflow), and no body that large can exist.
cdef long long _MAX_CONTENT_LENGTH = 1LL << 62

# Headers kept on the C stack while parsing (2 KiB); a head with more (only possible when
# max_header_count is raised above it) moves to a growing PyMem block.
cdef enum:
    _STACK_FIELDS = 128


cdef void _init_tables() noexcept:
    cdef int c
    cdef bytes tchar_extra = b"!#$%&'*+-.^_`|~"
    cdef bytes host_extra = b"-._~!$&'()*+,;=%"
    for c in range(256):
        _LOWER[c] = c + 32 if 65 <= c <= 90 else c
        _CLASS[c] = 0
        if (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122):
            _CLASS[c] |= _C_TCHAR | _C_HOST | _C_IPLIT
        if 48 <= c <= 57:
            _CLASS[c] |= _C_DIGIT
        if c == _HTAB or 32 <= c <= 126 or c >= 128:
            _CLASS[c] |= _C_VALUE
        if 33 <= c <= 126 and c != 35:
            # "#" too is refused: a request-target carries no fragment (RFC 9112 §3.2).
            _CLASS[c] |= _C_TARGET
    for c in tchar_extra:
        _CLASS[c] |= _C_TCHAR
    for c in host_extra:
        _CLASS[c] |= _C_HOST | _C_IPLIT
    _CLASS[58] |= _C_IPLIT   # ":"


_init_tables()


# ---------------------------------------------------------------------------------------------
# Errors: the C walk returns one of these; _raise turns it into the exception to answer with.

cdef enum _Err:
    _OK = 0
    _E_NOMEM
    _E_NOT_ONE_HEAD
    _E_BARE_LF
    _E_BARE_CR
    _E_REQUEST_LINE_TOO_LONG
    _E_HEAD_TOO_LONG
    _E_TOO_MANY_FIELDS
    _E_METHOD
    _E_TARGET
    _E_TARGET_FORM
    _E_VERSION
    _E_VERSION_UNSUPPORTED
    _E_STATUS
    _E_REASON
    _E_OBS_FOLD
    _E_NAME
    _E_SPACE_BEFORE_COLON
    _E_NO_COLON
    _E_VALUE
    _E_CL_INVALID
    _E_CL_DUPLICATE
    _E_CL_AND_TE
    _E_TE_HTTP10
    _E_TE_MALFORMED
    _E_TE_CHUNKED_NOT_LAST
    _E_TE_UNKNOWN
    _E_HOST_MISSING
    _E_HOST_DUPLICATE
    _E_HOST_INVALID

# Indexed by _Err: (message, status).  Statuses per RFC 9110 §15 and RFC 9112.
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
)


cdef int _raise(int err) except -1:
    if err == _E_NOMEM:
        raise MemoryError()
    if err == _E_NOT_ONE_HEAD:
        raise ValueError(_MESSAGES[err][0])
    message, status = _MESSAGES[err]
    raise ProtocolError(message, status)


# ---------------------------------------------------------------------------------------------
# Small pure-C helpers

cdef inline bint _is_ows(unsigned char c) noexcept:
    return c == _SP or c == _HTAB


cdef inline bint _ieq(const unsigned char* s, const char* lower, Py_ssize_t n) noexcept:
    """s[0:n] equals the lower-case ASCII literal ``lower`` ignoring case."""
    cdef Py_ssize_t i
    for i in range(n):
        if _LOWER[s[i]] != <unsigned char>lower[i]:
            return False
    return True


cdef inline Py_ssize_t _list_element(const unsigned char* d, Py_ssize_t* pos, Py_ssize_t end,
                                     Py_ssize_t* elem_end) noexcept:
    """Next element of a comma list (RFC 9110 §5.6.1) in d[pos:end], OWS trimmed.

    Returns its start and sets ``elem_end``; ``pos`` moves past the comma.  Returns -1 when the list
    is exhausted.  Empty elements come back as start == end; callers skip them (§5.6.1).
    """
    cdef Py_ssize_t s = pos[0], e
    cdef const unsigned char* comma
    if s > end:
        return -1
    comma = <const unsigned char*>memchr(d + s, 44, <size_t>(end - s))
    e = (comma - d) if comma != NULL else end
    pos[0] = e + 1
    while s < e and _is_ows(d[s]):
        s += 1
    while e > s and _is_ows(d[e - 1]):
        e -= 1
    elem_end[0] = e
    return s


cdef inline Py_ssize_t _skip_value(const unsigned char* d, Py_ssize_t p, Py_ssize_t n) noexcept:
    """Index of the first byte at or after p that is not field-vchar/SP/HTAB (RFC 9110 §5.5).

    Eight bytes at a time while none is a control (below 0x20) or DEL: the word tests are exact
    ("hasless" and "haszero" from Bit Twiddling Hacks), and obs-text (0x80-0xFF) never trips them.
    Any word holding a control -- HTAB, or the CR ending the value -- is finished bytewise."""
    cdef uint64_t x, y
    while p + 8 <= n:
        memcpy(&x, d + p, 8)
        y = x ^ 0x7F7F7F7F7F7F7F7FULL
        if (((x - 0x2020202020202020ULL) & ~x) | ((y - 0x0101010101010101ULL) & ~y)) \
                & 0x8080808080808080ULL:
            break
        p += 8
    while _CLASS[d[p]] & _C_VALUE:
        p += 1
    return p


# ---------------------------------------------------------------------------------------------
# ParserLimits

@cython.final
cdef class ParserLimits:

    def __init__(self, Py_ssize_t max_request_line_bytes=8192, Py_ssize_t max_head_bytes=65536,
                 Py_ssize_t max_header_count=100):
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
                lf = <const unsigned char*>memchr(data + i, _LF, <size_t>(line_limit - i))
            if lf == NULL:
                if line_limit > i:
                    self._scanned = line_limit
                if not self.response_mode and length > max_line and (
                        data[max_line] != _CR or length > max_line + 1):
                    _raise(_E_REQUEST_LINE_TOO_LONG)
                if length >= max_head:
                    _raise(_E_HEAD_TOO_LONG)
                return -1
            i = lf - data
            if i == 0 or data[i - 1] != _CR:
                # Index max_line is examined before the LF after it: 414 wins, as in any split.
                if not self.response_mode and i > max_line:
                    _raise(_E_REQUEST_LINE_TOO_LONG)
                _raise(_E_BARE_LF)
            self._line_seen = True
            i += 1
        while i < limit:
            lf = <const unsigned char*>memchr(data + i, _LF, <size_t>(limit - i))
            if lf == NULL:
                break
            i = lf - data
            # i >= 2 here: the first line's CR LF lies before it.
            if data[i - 1] != _CR:
                _raise(_E_BARE_LF)
            if data[i - 2] == _LF:
                self._scanned = i    # a repeated call finds this same end again
                return i + 1
            i += 1
        self._scanned = limit
        # The last index a head may end at is max_head - 1: once it is examined, 431.
        if length >= max_head:
            _raise(_E_HEAD_TOO_LONG)
        return -1

    cpdef void reset(self) noexcept:
        self._scanned = 0
        self._line_seen = False

    def feed(self, bytes data not None):
        return self.find_end(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    def __repr__(self):
        return (f"HeadScanner(scanned={self._scanned}, line_seen={bool(self._line_seen)}, "
                f"response_mode={bool(self.response_mode)})")


# ---------------------------------------------------------------------------------------------
# The C walk over a whole head

cdef enum _Method:
    _M_OTHER = 0
    _M_GET
    _M_HEAD
    _M_POST
    _M_PUT
    _M_DELETE
    _M_PATCH
    _M_OPTIONS
    _M_CONNECT
    _M_TRACE


cdef struct _StartLine:
    Py_ssize_t method_end           # method is d[0:method_end]
    int method_id                   # _Method
    Py_ssize_t target_start, target_end
    Py_ssize_t query_start          # after "?", or -1
    int version                     # 10 or 11
    int status                      # response mode
    Py_ssize_t reason_start, reason_end
    Py_ssize_t fields_start         # first byte after the start line's CRLF


cdef struct _Fields:
    uint32_t* offsets               # stack block or, past _STACK_FIELDS, a PyMem block (heap)
    Py_ssize_t count
    Py_ssize_t capacity
    Py_ssize_t max_count
    bint heap
    int cl_count
    long long content_length
    int te_lines
    int te_elements
    int te_chunked                  # how many "chunked" codings
    bint te_last_chunked            # the last coding seen so far is chunked
    bint te_unknown                 # some other coding
    bint te_malformed
    int host_count
    bint host_invalid
    bint conn_close
    bint conn_keep_alive
    bint conn_upgrade
    bint expect_continue
    bint upgrade_field


cdef inline int _method_id(const unsigned char* d, Py_ssize_t n) noexcept:
    # Methods are case-sensitive (RFC 9110 §9.1): compare bytes exactly.
    if n == 3:
        if memcmp(d, b"GET", 3) == 0:
            return _M_GET
        if memcmp(d, b"PUT", 3) == 0:
            return _M_PUT
    elif n == 4:
        if memcmp(d, b"POST", 4) == 0:
            return _M_POST
        if memcmp(d, b"HEAD", 4) == 0:
            return _M_HEAD
    elif n == 5:
        if memcmp(d, b"PATCH", 5) == 0:
            return _M_PATCH
        if memcmp(d, b"TRACE", 5) == 0:
            return _M_TRACE
    elif n == 6:
        if memcmp(d, b"DELETE", 6) == 0:
            return _M_DELETE
    elif n == 7:
        if memcmp(d, b"OPTIONS", 7) == 0:
            return _M_OPTIONS
        if memcmp(d, b"CONNECT", 7) == 0:
            return _M_CONNECT
    return _M_OTHER


cdef inline int _scan_version(const unsigned char* d, Py_ssize_t p, int* version) noexcept:
    """HTTP-version = "HTTP/" DIGIT "." DIGIT at d[p:p+8] (RFC 9112 §2.3; the name is
    case-sensitive).  Reads stop at the first mismatch, so they never pass the line's CR.
    HTTP/1.0 -> 10; HTTP/1.1 and any higher 1.x -> 11, since a recipient processes a higher minor
    version as the highest it implements (RFC 9110 §6.2); another major version -> 505."""
    if not (d[p] == b'H' and d[p + 1] == b'T' and d[p + 2] == b'T' and d[p + 3] == b'P'
            and d[p + 4] == b'/' and (_CLASS[d[p + 5]] & _C_DIGIT) and d[p + 6] == b'.'
            and (_CLASS[d[p + 7]] & _C_DIGIT)):
        return _E_VERSION
    if d[p + 5] != b'1':
        return _E_VERSION_UNSUPPORTED
    version[0] = 10 if d[p + 7] == b'0' else 11
    return _OK


cdef int _scan_authority(const unsigned char* d, Py_ssize_t s, Py_ssize_t e,
                         bint port_required) noexcept:
    """uri-host [":" port] (RFC 3986 §3.2.2-3) in d[s:e]; 1 when valid.

    Used for Host (RFC 9112 §3.2, port optional, empty allowed by the caller) and for the
    authority-form of CONNECT (RFC 9112 §3.2.3: host and port both required)."""
    cdef Py_ssize_t p = s
    if p < e and d[p] == b'[':
        p += 1
        while p < e and (_CLASS[d[p]] & _C_IPLIT):
            p += 1
        if p == s + 1 or p >= e or d[p] != b']':
            return 0
        p += 1
    else:
        while p < e and (_CLASS[d[p]] & _C_HOST):
            p += 1
        if p == s:
            return 0
    if p == e:
        return not port_required
    if d[p] != b':':
        return 0
    p += 1
    if port_required and p == e:
        return 0
    while p < e:
        if not (_CLASS[d[p]] & _C_DIGIT):
            return 0
        p += 1
    return 1


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int _scan_request_line(const unsigned char* d, Py_ssize_t n, Py_ssize_t max_line,
                            _StartLine* sl) noexcept:
    """request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3).

    Exactly one SP between the parts: the RFC's lenient whitespace parsing is a MAY and we decline
    it.  The caller guarantees d ends with CR LF CR LF, and each loop below stops at a CR, so no
    read passes the end."""
    cdef Py_ssize_t p = 0, t, cr
    cdef const unsigned char* q = <const unsigned char*>memchr(d, _CR, <size_t>n)
    cdef int err
    # 414 first, whatever else is wrong with the line (the scanner decides the same way).
    if q - d > max_line:
        return _E_REQUEST_LINE_TOO_LONG
    while _CLASS[d[p]] & _C_TCHAR:
        p += 1
    if p == 0 or d[p] != _SP:
        return _E_METHOD
    sl.method_end = p
    sl.method_id = _method_id(d, p)
    t = p + 1
    p = t
    while _CLASS[d[p]] & _C_TARGET:
        p += 1
    sl.target_start = t
    sl.target_end = p
    if p > t and d[p] == _CR:
        return _E_VERSION           # "GET /": no HTTP-version (HTTP/0.9 is not spoken)
    if p == t or d[p] != _SP:
        return _E_TARGET
    err = _scan_version(d, p + 1, &sl.version)
    cr = p + 9
    if err == _E_VERSION or (err == _OK and d[cr] != _CR):
        return _E_VERSION
    if err != _OK:
        return err
    if d[cr + 1] != _LF:
        return _E_BARE_CR
    sl.fields_start = cr + 2
    q = <const unsigned char*>memchr(d + t, b'?', <size_t>(sl.target_end - t))
    sl.query_start = (q - d) + 1 if q != NULL else -1
    # request-target forms (RFC 9112 §3.2): origin-form for every method but CONNECT;
    # authority-form only and always for CONNECT (§3.2.3, RFC 9110 §9.3.6); asterisk-form only
    # for OPTIONS (§3.2.4); absolute-form (§3.2.2) with an http or https URI (RFC 9110 §4.2).
    if sl.method_id == _M_CONNECT:
        if not _scan_authority(d, t, sl.target_end, True):
            return _E_TARGET_FORM
        return _OK
    if d[t] == b'/':
        return _OK
    if sl.target_end - t == 1 and d[t] == b'*':
        return _OK if sl.method_id == _M_OPTIONS else _E_TARGET_FORM
    if _absolute_path_start(d, t, sl.target_end) >= 0:
        return _OK
    return _E_TARGET_FORM


cdef Py_ssize_t _absolute_path_start(const unsigned char* d, Py_ssize_t t, Py_ssize_t e) noexcept:
    """For an absolute-form "http://authority..." or "https://authority..." target in d[t:e]
    (scheme case-insensitive, RFC 3986 §3.1), the index where its authority ends; else -1.
    The authority must be uri-host [":" port]: an empty host is invalid for http(s) (RFC 9110
    §4.2.1) and userinfo is treated as an error (RFC 9110 §4.2.4)."""
    cdef Py_ssize_t p, a
    if e - t > 7 and _ieq(d + t, b"http://", 7):
        a = t + 7
    elif e - t > 8 and _ieq(d + t, b"https://", 8):
        a = t + 8
    else:
        return -1
    p = a
    while p < e and d[p] != b'/' and d[p] != b'?':
        p += 1
    if not _scan_authority(d, a, p, False):
        return -1
    return p


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int _scan_status_line(const unsigned char* d, _StartLine* sl) noexcept:
    """status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4).

    The SP after the status code is required even when the reason is empty."""
    cdef Py_ssize_t p
    cdef int err = _scan_version(d, 0, &sl.version)
    if err != _OK:
        return err
    if d[8] != _SP:
        return _E_VERSION
    if not (_CLASS[d[9]] & _C_DIGIT and _CLASS[d[10]] & _C_DIGIT and _CLASS[d[11]] & _C_DIGIT):
        return _E_STATUS
    sl.status = (d[9] - 48) * 100 + (d[10] - 48) * 10 + (d[11] - 48)
    if sl.status < 100 or sl.status > 599 or d[12] != _SP:
        return _E_STATUS
    p = 13
    while _CLASS[d[p]] & _C_VALUE:
        p += 1
    if d[p] != _CR:
        return _E_REASON
    if d[p + 1] != _LF:
        return _E_BARE_CR
    sl.reason_start = 13
    sl.reason_end = p
    sl.fields_start = p + 2
    return _OK


cdef int _field_semantics(const unsigned char* d, Py_ssize_t ns, Py_ssize_t nlen,
                          Py_ssize_t vs, Py_ssize_t ve, _Fields* f) noexcept:
    """Record what the framing and connection decisions need from one field line."""
    cdef Py_ssize_t p, s, e, t
    cdef long long v
    cdef int digit
    if nlen == 14 and _ieq(d + ns, b"content-length", 14):
        # RFC 9110 §8.6: Content-Length = 1*DIGIT.  A list ("5, 5") or a repeated field is
        # refused, identical or not: RFC 9112 §6.3 lets a recipient reject it, and a proxy
        # chain that merges it differently is a request-smuggling vector.
        if f.cl_count:
            return _E_CL_DUPLICATE
        f.cl_count = 1
        if vs == ve:
            return _E_CL_INVALID
        v = 0
        for p in range(vs, ve):
            if not (_CLASS[d[p]] & _C_DIGIT):
                return _E_CL_INVALID
            digit = d[p] - 48
            if v > (_MAX_CONTENT_LENGTH - digit) // 10:
                return _E_CL_INVALID
            v = v * 10 + digit
        f.content_length = v
    elif nlen == 17 and _ieq(d + ns, b"transfer-encoding", 17):
        # Transfer-Encoding = #transfer-coding (RFC 9112 §6.1); several field lines form one list
        # (RFC 9110 §5.3).  Coding names are case-insensitive (RFC 9112 §7).  Empty elements,
        # which RFC 9110 §5.6.1 tolerates in lists, are refused here: framing is where peers must
        # not disagree (httptools and h11 refuse them too).
        f.te_lines += 1
        p = vs
        while True:
            s = _list_element(d, &p, ve, &e)
            if s < 0:
                break
            if s == e:
                f.te_malformed = True
                continue
            f.te_elements += 1
            t = s
            while t < e and (_CLASS[d[t]] & _C_TCHAR):
                t += 1
            if t == s:
                f.te_malformed = True
            elif t == e and e - s == 7 and _ieq(d + s, b"chunked", 7):
                f.te_chunked += 1
                f.te_last_chunked = True
            else:
                while t < e and _is_ows(d[t]):
                    t += 1
                if t < e and d[t] != b';':
                    f.te_malformed = True
                f.te_unknown = True
                f.te_last_chunked = False
    elif nlen == 4 and _ieq(d + ns, b"host", 4):
        # Host = uri-host [":" port] (RFC 9110 §7.2); empty is valid (no authority).
        f.host_count += 1
        if vs < ve and not _scan_authority(d, vs, ve, False):
            f.host_invalid = True
    elif nlen == 10 and _ieq(d + ns, b"connection", 10):
        # Connection = #connection-option, case-insensitive (RFC 9110 §7.6.1).
        p = vs
        while True:
            s = _list_element(d, &p, ve, &e)
            if s < 0:
                break
            if e - s == 5 and _ieq(d + s, b"close", 5):
                f.conn_close = True
            elif e - s == 10 and _ieq(d + s, b"keep-alive", 10):
                f.conn_keep_alive = True
            elif e - s == 7 and _ieq(d + s, b"upgrade", 7):
                f.conn_upgrade = True
    elif nlen == 6 and _ieq(d + ns, b"expect", 6):
        # Expect = #expectation; "100-continue" is case-insensitive (RFC 9110 §10.1.1).
        p = vs
        while True:
            s = _list_element(d, &p, ve, &e)
            if s < 0:
                break
            if e - s == 12 and _ieq(d + s, b"100-continue", 12):
                f.expect_continue = True
    elif nlen == 7 and _ieq(d + ns, b"upgrade", 7):
        f.upgrade_field = True
    return _OK


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int _scan_fields(const unsigned char* d, Py_ssize_t p, Py_ssize_t n, _Fields* f) noexcept:
    """Walk the field lines from d[p] to the empty line, which must be d[n-2:n].

    field-line = field-name ":" OWS field-value OWS (RFC 9112 §5).  Invariant: d ends with
    CR LF CR LF and every class loop stops at a CR (CR is in no class), so no read passes the end;
    a line start is at most n - 2, where the final CR LF is taken as the empty line."""
    cdef Py_ssize_t ns, ne, vs, ve, newcap
    cdef unsigned char c
    cdef uint32_t* grown
    cdef uint32_t* o
    cdef int err
    while True:
        c = d[p]
        if c == _CR:
            if d[p + 1] != _LF:
                return _E_BARE_CR
            return _OK if p + 2 == n else _E_NOT_ONE_HEAD
        if c == _SP or c == _HTAB:
            # obs-fold, or whitespace before the first field line (RFC 9112 §5.2, §2.2): reject.
            return _E_OBS_FOLD
        ns = p
        while _CLASS[d[p]] & _C_TCHAR:
            p += 1
        ne = p
        c = d[p]
        if c != b':':
            if c == _SP or c == _HTAB:
                return _E_SPACE_BEFORE_COLON
            if c == _CR and ns != ne:
                return _E_NO_COLON
            if c == _LF:
                return _E_BARE_LF
            return _E_NAME
        if ns == ne:
            return _E_NAME
        p += 1
        while _is_ows(d[p]):
            p += 1
        vs = p
        p = _skip_value(d, p, n)
        c = d[p]
        if c != _CR:
            return _E_BARE_LF if c == _LF else _E_VALUE
        if d[p + 1] != _LF:
            return _E_BARE_CR
        ve = p
        while ve > vs and _is_ows(d[ve - 1]):
            ve -= 1
        p += 2
        if f.count == f.capacity:
            if f.count >= f.max_count:
                return _E_TOO_MANY_FIELDS
            newcap = f.capacity * 2
            if newcap > f.max_count:
                newcap = f.max_count
            if f.heap:
                grown = <uint32_t*>PyMem_Realloc(f.offsets, <size_t>newcap * 4 * sizeof(uint32_t))
            else:
                grown = <uint32_t*>PyMem_Malloc(<size_t>newcap * 4 * sizeof(uint32_t))
                if grown != NULL:
                    memcpy(grown, f.offsets, <size_t>f.count * 4 * sizeof(uint32_t))
            if grown == NULL:
                return _E_NOMEM
            f.offsets = grown
            f.capacity = newcap
            f.heap = True
        o = f.offsets + 4 * f.count
        o[0] = <uint32_t>ns
        o[1] = <uint32_t>ne
        o[2] = <uint32_t>vs
        o[3] = <uint32_t>ve
        f.count += 1
        err = _field_semantics(d, ns, ne - ns, vs, ve, f)
        if err != _OK:
            return err


cdef int _decide_te(_Fields* f) noexcept:
    """Transfer-Encoding must end in exactly one chunked (RFC 9112 §6.3 item 4: otherwise the
    length cannot be determined -> 400); other codings are not implemented (§6.1: 501)."""
    if f.te_malformed or f.te_elements == 0:
        return _E_TE_MALFORMED
    if f.te_chunked > 1 or (f.te_chunked == 1 and not f.te_last_chunked):
        return _E_TE_CHUNKED_NOT_LAST
    if f.te_unknown:
        return _E_TE_UNKNOWN
    return _OK


cdef inline str _method_str(const unsigned char* d, Py_ssize_t n, int method_id):
    # The registered methods return the module's interned constants: no allocation.
    if method_id == _M_GET:
        return "GET"
    if method_id == _M_POST:
        return "POST"
    if method_id == _M_HEAD:
        return "HEAD"
    if method_id == _M_PUT:
        return "PUT"
    if method_id == _M_DELETE:
        return "DELETE"
    if method_id == _M_PATCH:
        return "PATCH"
    if method_id == _M_OPTIONS:
        return "OPTIONS"
    if method_id == _M_CONNECT:
        return "CONNECT"
    if method_id == _M_TRACE:
        return "TRACE"
    return PyUnicode_DecodeASCII(<const char*>d, n, NULL)


cdef Head _parse(bytes raw, ParserLimits limits, bint response_mode, bint head_request):
    cdef const unsigned char* d
    cdef Py_ssize_t n
    cdef _StartLine sl
    cdef _Fields f
    cdef uint32_t stack_offsets[4 * _STACK_FIELDS]
    cdef int err
    cdef Head head
    if raw is None:
        raise TypeError("raw must be bytes, not None")
    if limits is None:
        limits = _DEFAULT_LIMITS
    d = <const unsigned char*>PyBytes_AS_STRING(raw)
    n = PyBytes_GET_SIZE(raw)
    # Everything below relies on this sentinel (see _scan_fields).
    if n < 4 or d[n - 4] != _CR or d[n - 3] != _LF or d[n - 2] != _CR or d[n - 1] != _LF:
        _raise(_E_NOT_ONE_HEAD)
    if n > limits.max_head_bytes:
        _raise(_E_HEAD_TOO_LONG)
    sl.query_start = -1
    sl.status = 0
    sl.reason_start = sl.reason_end = 0
    sl.target_start = sl.target_end = sl.method_end = 0
    sl.method_id = _M_OTHER
    if response_mode:
        err = _scan_status_line(d, &sl)
    else:
        err = _scan_request_line(d, n, limits.max_request_line_bytes, &sl)
    if err != _OK:
        _raise(err)

    f.offsets = stack_offsets
    f.count = 0
    f.capacity = _STACK_FIELDS if limits.max_header_count > _STACK_FIELDS else limits.max_header_count
    f.max_count = limits.max_header_count
    f.heap = False
    f.cl_count = f.te_lines = f.te_elements = f.te_chunked = f.host_count = 0
    f.content_length = -1
    f.te_last_chunked = f.te_unknown = f.te_malformed = f.host_invalid = False
    f.conn_close = f.conn_keep_alive = f.conn_upgrade = False
    f.expect_continue = f.upgrade_field = False
    try:
        err = _scan_fields(d, sl.fields_start, n, &f)
        if err == _OK:
            err = _decide(&sl, &f, response_mode, head_request)
        if err != _OK:
            _raise(err)
        head = Head.__new__(Head)
        if f.count:
            head._offsets = <uint32_t*>PyMem_Malloc(<size_t>f.count * 4 * sizeof(uint32_t))
            if head._offsets == NULL:
                raise MemoryError()
            memcpy(head._offsets, f.offsets, <size_t>f.count * 4 * sizeof(uint32_t))
    finally:
        if f.heap:
            PyMem_Free(f.offsets)
    head.raw = raw
    head.version = sl.version
    head.status = sl.status
    head.method = "" if response_mode else _method_str(d, sl.method_end, sl.method_id)
    head._target_start = sl.target_start
    head._target_end = sl.target_end
    head._query_start = sl.query_start
    head._reason_start = sl.reason_start
    head._reason_end = sl.reason_end
    head.header_count = f.count
    head.content_length = f.content_length
    head.framing = _framing(&sl, &f, response_mode, head_request)
    if head.framing != FRAMING_LENGTH:
        head.content_length = -1
    # Persistence (RFC 9112 §9.3): HTTP/1.1 unless "close"; HTTP/1.0 only with "keep-alive".
    # A response delimited by the close cannot persist (§9.3 via §6.3 item 8).
    if sl.version == 11:
        head.keep_alive = not f.conn_close
    else:
        head.keep_alive = f.conn_keep_alive and not f.conn_close
    if head.framing == FRAMING_CLOSE:
        head.keep_alive = False
    # Expect: 100-continue only means something from an HTTP/1.1 client (RFC 9110 §10.1.1).
    head.expect_continue = (not response_mode and sl.version == 11 and f.expect_continue)
    # A server ignores Upgrade in an HTTP/1.0 request (RFC 9110 §7.8); Upgrade is only honoured
    # when listed in Connection (§7.8, §7.6.1).
    head.upgrade = f.conn_upgrade and f.upgrade_field and (response_mode or sl.version == 11)
    return head


cdef int _decide(_StartLine* sl, _Fields* f, bint response_mode, bint head_request) noexcept:
    """Rules that need every field line: framing validity and Host (request mode)."""
    cdef int err
    if f.te_lines:
        # Both framings at once is how requests are smuggled: refused in both modes (RFC 9112
        # §6.1 lets a server reject it; for responses this is stricter than "TE wins", §6.3).
        if f.cl_count:
            return _E_CL_AND_TE
        # An HTTP/1.0 message with Transfer-Encoding has faulty framing (RFC 9112 §6.1).
        if sl.version == 10:
            return _E_TE_HTTP10
        err = _decide_te(f)
        if err != _OK:
            return err
    if not response_mode:
        # RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any request with more
        # than one Host or an invalid one.
        if f.host_count > 1:
            return _E_HOST_DUPLICATE
        if f.host_invalid:
            return _E_HOST_INVALID
        if f.host_count == 0 and sl.version == 11:
            return _E_HOST_MISSING
    return _OK


cdef int _framing(_StartLine* sl, _Fields* f, bint response_mode, bint head_request) noexcept:
    """Message body length (RFC 9112 §6.3), after _decide accepted the fields.

    Content-Length: 0 is FRAMING_NONE: no body follows, and the protocol needs one test only."""
    if response_mode:
        # §6.3 items 1: HEAD responses, 1xx, 204 and 304 never have a body.
        if head_request or sl.status < 200 or sl.status == 204 or sl.status == 304:
            return FRAMING_NONE
    if f.te_lines:
        return FRAMING_CHUNKED
    if f.cl_count:
        return FRAMING_LENGTH if f.content_length > 0 else FRAMING_NONE
    # §6.3 item 7 (requests: no body) and item 8 (responses: read until close).
    return FRAMING_CLOSE if response_mode else FRAMING_NONE


cdef Head parse_request(bytes raw, ParserLimits limits):
    return _parse(raw, limits, False, False)


cdef Head parse_response(bytes raw, ParserLimits limits, bint head_request):
    return _parse(raw, limits, True, head_request)


def parse_request_head(bytes raw, ParserLimits limits=None):
    return _parse(raw, limits, False, False)


def parse_response_head(bytes raw, ParserLimits limits=None, bint head_request=False):
    return _parse(raw, limits, True, head_request)


# ---------------------------------------------------------------------------------------------
# Head: the lazy Python view

_FRAMING_NAMES = ("NONE", "LENGTH", "CHUNKED", "CLOSE")


cdef inline const unsigned char* _data(Head self) noexcept:
    return <const unsigned char*>PyBytes_AS_STRING(self.raw)


# Well-known field names come back as these interned str objects: no allocation for them.
# Sorted by length: names of length L are _COMMON_NAMES[_common_first[L]:_common_first[L + 1]],
# entry k spelled at _COMMON_BYTES[_common_offset[k]:][:L].
_COMMON_NAMES = tuple(sorted((
    "te", "dnt", "host", "date", "etag", "vary", "range", "accept", "cookie", "origin", "expect",
    "pragma", "server", "referer", "upgrade", "location", "sec-ch-ua", "connection", "keep-alive",
    "set-cookie", "user-agent", "x-real-ip", "content-type", "x-request-id", "authorization",
    "cache-control", "if-none-match", "last-modified", "accept-ranges", "accept-encoding",
    "accept-language", "content-length", "sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site",
    "sec-fetch-user", "x-forwarded-for", "content-encoding", "sec-ch-ua-mobile",
    "x-requested-with", "transfer-encoding", "if-modified-since", "x-forwarded-proto",
    "sec-websocket-key", "sec-ch-ua-platform", "sec-websocket-version", "sec-websocket-protocol",
    "sec-websocket-extensions", "upgrade-insecure-requests",
), key=len))
cdef enum:
    _MAX_COMMON_LEN = 32
    _MAX_COMMON = 64
cdef bytes _COMMON_BYTES = "".join(_COMMON_NAMES).encode("ascii")
cdef Py_ssize_t _common_first[_MAX_COMMON_LEN + 2]
cdef Py_ssize_t _common_offset[_MAX_COMMON]


cdef int _init_common_names() except -1:
    cdef Py_ssize_t k, length, offset = 0
    lengths = [len(name) for name in _COMMON_NAMES]
    if len(lengths) > _MAX_COMMON or lengths[-1] > _MAX_COMMON_LEN:
        raise AssertionError("_COMMON_NAMES outgrew its C tables")
    for length in range(_MAX_COMMON_LEN + 2):
        _common_first[length] = sum(1 for n in lengths if n < length)
    for k in range(len(lengths)):
        _common_offset[k] = offset
        offset += lengths[k]
    return 0


_init_common_names()


cdef inline str _name_lower(Head self, Py_ssize_t i):
    cdef const unsigned char* d = _data(self)
    cdef uint32_t s = self._offsets[4 * i], e = self._offsets[4 * i + 1]
    cdef uint32_t n = e - s
    cdef char buf[64]
    cdef uint32_t k
    cdef const char* common = PyBytes_AS_STRING(_COMMON_BYTES)
    if n <= _MAX_COMMON_LEN:
        for k in range(_common_first[n], _common_first[n + 1]):
            if _ieq(d + s, common + _common_offset[k], n):
                return <str>_COMMON_NAMES[k]
    if n > 64:
        return PyUnicode_DecodeASCII(<const char*>d + s, n, NULL).lower()
    for k in range(n):
        buf[k] = <char>_LOWER[d[s + k]]
    return PyUnicode_DecodeASCII(buf, n, NULL)


cdef inline str _value(Head self, Py_ssize_t i):
    cdef uint32_t s = self._offsets[4 * i + 2]
    return PyUnicode_DecodeLatin1(<const char*>_data(self) + s, self._offsets[4 * i + 3] - s,
                                  NULL)


cdef Py_ssize_t _find(Head self, str name, Py_ssize_t start) except -2:
    """Index of the first field at or after ``start`` named ``name`` (any case), else -1."""
    cdef Py_ssize_t size, i, k
    cdef const unsigned char* want = <const unsigned char*>PyUnicode_AsUTF8AndSize(name, &size)
    cdef const unsigned char* d = _data(self)
    cdef uint32_t* o
    for i in range(start, self.header_count):
        o = self._offsets + 4 * i
        if o[1] - o[0] != size:
            continue
        for k in range(size):
            if _LOWER[d[o[0] + k]] != _LOWER[want[k]]:
                break
        else:
            return i
    return -1


@cython.final
@cython.freelist(64)
cdef class Head:

    def __init__(self):
        raise TypeError("Head objects are made by parse_request_head / parse_response_head")

    def __dealloc__(self):
        PyMem_Free(self._offsets)
        self._offsets = NULL

    @property
    def reason(self):
        return PyUnicode_DecodeLatin1(<const char*>_data(self) + self._reason_start,
                                      self._reason_end - self._reason_start, NULL)

    @property
    def raw_target(self):
        return PyBytes_FromStringAndSize(<const char*>_data(self) + self._target_start,
                                         self._target_end - self._target_start)

    @property
    def target(self):
        return PyUnicode_DecodeLatin1(<const char*>_data(self) + self._target_start,
                                      self._target_end - self._target_start, NULL)

    @property
    def path(self):
        cdef const unsigned char* d = _data(self)
        cdef Py_ssize_t s = self._target_start
        cdef Py_ssize_t e = self._query_start - 1 if self._query_start >= 0 else self._target_end
        cdef Py_ssize_t a
        if e > s and d[s] != b'/' and d[s] != b'*':
            # absolute-form: the path is what follows the authority (RFC 9112 §3.2.2, §3.3)
            a = _absolute_path_start(d, s, e)
            if a >= 0:
                if a == e:
                    return "/"
                s = a
        return PyUnicode_DecodeLatin1(<const char*>d + s, e - s, NULL)

    @property
    def query_string(self):
        if self._query_start < 0:
            return ""
        return PyUnicode_DecodeLatin1(<const char*>_data(self) + self._query_start,
                                      self._target_end - self._query_start, NULL)

    def header_items(self):
        cdef Py_ssize_t i
        cdef list items
        if self._items_cache is None:
            items = []
            for i in range(self.header_count):
                items.append((_name_lower(self, i), _value(self, i)))
            self._items_cache = items
        return self._items_cache

    def raw_header_items(self):
        cdef const char* d = <const char*>_data(self)
        cdef uint32_t* o = self._offsets
        cdef Py_ssize_t i
        return [(PyBytes_FromStringAndSize(d + o[4 * i], o[4 * i + 1] - o[4 * i]),
                 PyBytes_FromStringAndSize(d + o[4 * i + 2], o[4 * i + 3] - o[4 * i + 2]))
                for i in range(self.header_count)]

    def get(self, str name not None, default=None):
        cdef Py_ssize_t i = _find(self, name, 0)
        return _value(self, i) if i >= 0 else default

    def get_all(self, str name not None):
        cdef list values = []
        cdef Py_ssize_t i = _find(self, name, 0)
        while i >= 0:
            values.append(_value(self, i))
            i = _find(self, name, i + 1)
        return values

    def __repr__(self):
        if self.status:
            line = f"HTTP/1.{self.version - 10} {self.status} {self.reason!r}"
        else:
            line = f"{self.method} {self.target!r} HTTP/1.{self.version - 10}"
        return (f"<Head {line} headers={self.header_count} framing={_FRAMING_NAMES[self.framing]}"
                f" content_length={self.content_length} keep_alive={bool(self.keep_alive)}>")
