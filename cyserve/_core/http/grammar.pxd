# cython: language_level=3
"""Contract of the HTTP/1.1 grammar every walk over bytes shares: the byte classes and the error
table.  Used by the head walks (scanner, startline, fields, head), the chunked codec and the
serialiser's field checks: one set of byte tables and one enum of parse errors for all of them.

Declares the control bytes, the byte classes with their two 256-entry tables, and the small
lexical helpers.  The helpers are ``cdef inline`` so every caller's scanning loop compiles them in:
no cross-module call per byte or per field line.  All of them are pure C and cannot fail.

Ownership: ``CLASS`` and ``LOWER`` live in ``grammar.pyx``, are filled once when it is imported and
are read-only afterwards; other modules reach them through the pointer Cython imports.
"""
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcpy

cdef enum:
    CR = 13
    LF = 10
    SP = 32
    HTAB = 9

# Bits of CLASS[c].
cdef enum:
    C_TCHAR = 1     # token characters (RFC 9110 §5.6.2)
    C_VALUE = 2     # field-vchar, SP, HTAB (RFC 9110 §5.5); also reason-phrase (RFC 9112 §4)
    C_TARGET = 4    # request-target bytes: VCHAR but "#"; no SP/CTL/non-ASCII (RFC 9112 §3.2)
    C_HOST = 8      # reg-name: unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2)
    C_DIGIT = 16
    C_IPLIT = 32    # inside an IP-literal "[...]": HEXDIG, ":", ".", IPvFuture chars
    C_HEXDIG = 64   # HEXDIG, either case (RFC 5234 §B.1): chunk-size (RFC 9112 §7.1)

# CR, LF and NUL are in no class, so every class loop stops at the CR that ends a line.
# C_VALUE is also quoted-pair's second byte (RFC 9110 §5.6.4); qdtext is C_VALUE but DQUOTE and
# backslash, which the chunked decoder tests for before it looks at the class.
cdef unsigned char CLASS[256]
# ASCII lower-casing of one byte; every other byte maps to itself.
cdef unsigned char LOWER[256]


cdef inline bint is_ows(unsigned char c) noexcept:
    return c == SP or c == HTAB


cdef inline unsigned char hex_value(unsigned char c) noexcept:
    """The value of a byte in C_HEXDIG: the low nibble, plus 9 for the letters (0x41-0x46 and
    0x61-0x66 both have bit 6 set, the digits 0x30-0x39 do not).  Meaningless for other bytes."""
    return (c & 0x0F) + 9 * (c >> 6)


cdef inline bint ieq(const unsigned char* s, const char* lower, Py_ssize_t n) noexcept:
    """s[0:n] equals the lower-case ASCII literal ``lower`` ignoring case."""
    cdef Py_ssize_t i
    for i in range(n):
        if LOWER[s[i]] != <unsigned char>lower[i]:
            return False
    return True


cdef inline Py_ssize_t list_element(const unsigned char* d, Py_ssize_t* pos, Py_ssize_t end,
                                    Py_ssize_t* elem_end) noexcept:
    """Next element of a comma list (RFC 9110 §5.6.1) in d[pos:end], OWS trimmed.

    Returns its start and sets ``elem_end``; ``pos`` moves past the comma.  Returns -1 when the list
    is exhausted.  Empty elements come back as start == end; ``list_member`` skips and bounds them
    (§5.6.1) for the lists a decision is taken on.
    """
    cdef Py_ssize_t s = pos[0], e
    cdef const unsigned char* comma
    if s > end:
        return -1
    comma = <const unsigned char*>memchr(d + s, 44, <size_t>(end - s))
    e = (comma - d) if comma != NULL else end
    pos[0] = e + 1
    while s < e and is_ows(d[s]):
        s += 1
    while e > s and is_ows(d[e - 1]):
        e -= 1
    elem_end[0] = e
    return s


# RFC 9110 §5.6.1: "a recipient MUST accept and ignore a reasonable number of empty list
# elements".  Eight per list (all field lines of one name form one list, RFC 9110 §5.3; an empty
# field line adds one) covers the leading, trailing and doubled commas of senders that join lists
# carelessly; the ninth makes the list malformed (400), so a value of thousands of commas is
# refused at its ninth empty element instead of being walked element by element to its end.
cdef enum:
    MAX_EMPTY_LIST_ELEMENTS = 8


cdef inline Py_ssize_t list_member(const unsigned char* d, Py_ssize_t* pos, Py_ssize_t end,
                                   Py_ssize_t* elem_end, int* empties) noexcept:
    """Next non-empty element of a comma list in d[pos:end], like ``list_element``.

    Empty elements are skipped and counted in ``empties`` (the caller's count for the whole list,
    across field lines).  Returns -1 when the list is exhausted, -2 once ``empties`` passes
    MAX_EMPTY_LIST_ELEMENTS: the caller refuses the field without reading the rest."""
    cdef Py_ssize_t s
    while True:
        s = list_element(d, pos, end, elem_end)
        if s < 0 or s < elem_end[0]:
            return s
        empties[0] += 1
        if empties[0] > MAX_EMPTY_LIST_ELEMENTS:
            return -2


cdef inline Py_ssize_t skip_value(const unsigned char* d, Py_ssize_t p, Py_ssize_t n) noexcept:
    """Index of the first byte at or after p that is not field-vchar/SP/HTAB (RFC 9110 §5.5).

    Eight bytes at a time while none is a control (below 0x20) or DEL: the word tests are exact
    ("hasless" and "haszero" from Bit Twiddling Hacks), and obs-text (0x80-0xFF) never trips them.
    Any word holding a control -- HTAB, or the CR ending the value -- is finished bytewise.
    The caller guarantees a byte outside C_VALUE (the head's final CR) at or after p."""
    cdef uint64_t x, y
    while p + 8 <= n:
        memcpy(&x, d + p, 8)
        y = x ^ 0x7F7F7F7F7F7F7F7FULL
        if (((x - 0x2020202020202020ULL) & ~x) | ((y - 0x0101010101010101ULL) & ~y)) \
                & 0x8080808080808080ULL:
            break
        p += 8
    while CLASS[d[p]] & C_VALUE:
        p += 1
    return p


cdef inline bint scan_authority(const unsigned char* d, Py_ssize_t s, Py_ssize_t e,
                                bint port_required) noexcept:
    """uri-host [":" port] (RFC 3986 §3.2.2-3) in d[s:e]; true when valid.

    Used for Host (RFC 9112 §3.2, port optional, empty allowed by the caller) and for the
    authority-form of CONNECT (RFC 9112 §3.2.3: host and port both required)."""
    cdef Py_ssize_t p = s
    if p < e and d[p] == b'[':
        p += 1
        while p < e and (CLASS[d[p]] & C_IPLIT):
            p += 1
        if p == s + 1 or p >= e or d[p] != b']':
            return False
        p += 1
    else:
        while p < e and (CLASS[d[p]] & C_HOST):
            p += 1
        if p == s:
            return False
    if p == e:
        return not port_required
    if d[p] != b':':
        return False
    p += 1
    if port_required and p == e:
        return False
    while p < e:
        if not (CLASS[d[p]] & C_DIGIT):
            return False
        p += 1
    return True


cdef inline Py_ssize_t absolute_path_start(const unsigned char* d, Py_ssize_t t,
                                           Py_ssize_t e) noexcept:
    """For an absolute-form "http://authority..." or "https://authority..." target in d[t:e]
    (scheme case-insensitive, RFC 3986 §3.1), the index where its authority ends; else -1.
    The authority must be uri-host [":" port]: an empty host is invalid for http(s) (RFC 9110
    §4.2.1) and userinfo is treated as an error (RFC 9110 §4.2.4)."""
    cdef Py_ssize_t p, a
    if e - t > 7 and ieq(d + t, b"http://", 7):
        a = t + 7
    elif e - t > 8 and ieq(d + t, b"https://", 8):
        a = t + 8
    else:
        return -1
    p = a
    while p < e and d[p] != b'/' and d[p] != b'?':
        p += 1
    if not scan_authority(d, a, p, False):
        return -1
    return p


# ---- error codes: what the C walks return instead of raising ----
# One enum for every parse error of the codec, head and body alike; ``grammar.pyx`` holds the
# message and status of each.  ``startline`` and ``fields`` return a code from their pure-C loops
# and ``parser`` turns it into an exception with ``raise_error`` only after the loop, so the loops
# never touch Python objects; ``scanner.find_end`` calls ``raise_error`` itself once its memchr
# walk has stopped; ``chunked`` keeps the code of a failed body and raises it after its scan.
cdef enum ParseError:
    E_OK = 0
    E_NOMEM
    E_NOT_ONE_HEAD
    # head: start line and field lines (RFC 9112 §2-§5, RFC 9110 §5)
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
    # head: the fields the parser decides on (RFC 9112 §3.2, §6; RFC 9110 §7.6.1, §7.8, §10.1.1)
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
    E_CONNECTION_MALFORMED
    E_EXPECT_MALFORMED
    E_UPGRADE_MALFORMED
    # chunked body: size lines and extensions (RFC 9112 §7.1, §7.1.1)
    E_CHUNK_SIZE_CHAR
    E_CHUNK_SIZE_TOO_LARGE
    E_CHUNK_LINE_TOO_LONG
    E_CHUNK_BWS_BEFORE_CRLF
    E_CHUNK_EXT_NAME_EMPTY
    E_CHUNK_EXT_VALUE_EMPTY
    E_CHUNK_EXT_CHAR
    E_CHUNK_EXT_QUOTED_CHAR
    E_CHUNK_EXT_TOKEN_QUOTE
    E_CHUNK_BARE_LF
    E_CHUNK_SIZE_LINE_CRLF
    E_CHUNK_DATA_CRLF
    # chunked body: the trailer section (RFC 9112 §7.1.2)
    E_TRAILER_NAME
    E_TRAILER_WS_COLON
    E_TRAILER_FOLD
    E_TRAILER_VALUE
    E_TRAILER_CRLF
    E_TRAILER_TOO_LARGE
    E_COUNT     # not an error: the number of codes, checked against the message table at import

# Always raises (callers pass a code other than E_OK): ProtocolError(message, status) for the
# peer's mistakes, MemoryError for E_NOMEM, ValueError for E_NOT_ONE_HEAD (a caller's mistake).
cdef int raise_error(int err) except -1
