# cython: language_level=3
"""The field-line walk: names, values and the framing-relevant fields of a head in one C pass.

``scan_fields`` runs once per head and calls ``_field_semantics`` once per field line, both here,
so the per-line work never crosses a module boundary; the lexical helpers are ``cdef inline`` from
``grammar.pxd``.  See ``fields.pxd`` for the contract.

Every comma list a decision is taken on (Transfer-Encoding, Connection, Expect, Upgrade) is walked
with ``list_member``: empty elements are ignored, as RFC 9110 §5.6.1 requires, up to
``MAX_EMPTY_LIST_ELEMENTS`` per list; one more makes the field malformed (400).
"""
cimport cython
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport uint32_t
from libc.string cimport memcpy

from cyserve._core.http.grammar cimport (
    C_DIGIT, C_TCHAR, CLASS, CR, HTAB, LF, SP, ieq, is_ows, list_member, scan_authority,
    skip_value,
)
from cyserve._core.http.grammar cimport (
    E_BARE_CR, E_BARE_LF, E_CL_DUPLICATE, E_CL_INVALID, E_CONNECTION_MALFORMED,
    E_EXPECT_MALFORMED, E_NAME, E_NO_COLON, E_NOMEM, E_NOT_ONE_HEAD, E_OBS_FOLD, E_OK,
    E_SPACE_BEFORE_COLON, E_TE_MALFORMED, E_TOO_MANY_FIELDS, E_UPGRADE_MALFORMED, E_VALUE,
)


# Content-Length values above this are refused: far below int64 overflow (RFC 9110 §8.6 asks
# recipients to guard against overflow), and no body that large can exist.
cdef long long _MAX_CONTENT_LENGTH = 1LL << 62


cdef int _field_semantics(const unsigned char* d, Py_ssize_t ns, Py_ssize_t nlen,
                          Py_ssize_t vs, Py_ssize_t ve, FieldLines* f) noexcept:
    """Record what the framing and connection decisions need from one field line."""
    cdef Py_ssize_t p, s, e, t
    cdef long long v
    cdef int digit
    if nlen == 14 and ieq(d + ns, b"content-length", 14):
        # RFC 9110 §8.6: Content-Length = 1*DIGIT.  A list ("5, 5") or a repeated field is
        # refused, identical or not: RFC 9112 §6.3 lets a recipient reject it, and a proxy
        # chain that merges it differently is a request-smuggling vector.
        if f.cl_count:
            return E_CL_DUPLICATE
        f.cl_count = 1
        if vs == ve:
            return E_CL_INVALID
        v = 0
        for p in range(vs, ve):
            if not (CLASS[d[p]] & C_DIGIT):
                return E_CL_INVALID
            digit = d[p] - 48
            if v > (_MAX_CONTENT_LENGTH - digit) // 10:
                return E_CL_INVALID
            v = v * 10 + digit
        f.content_length = v
    elif nlen == 17 and ieq(d + ns, b"transfer-encoding", 17):
        # Transfer-Encoding = #transfer-coding (RFC 9112 §6.1); several field lines form one list
        # (RFC 9110 §5.3).  Coding names are case-insensitive (RFC 9112 §7).  Empty elements are
        # ignored (RFC 9110 §5.6.1: ", chunked" and "chunked," are chunked, and so is an empty
        # line beside a "chunked" one); a list with no coding at all is malformed (parser).
        f.te_lines += 1
        p = vs
        while True:
            s = list_member(d, &p, ve, &e, &f.te_empty)
            if s == -2:
                return E_TE_MALFORMED
            if s < 0:
                break
            f.te_elements += 1
            t = s
            while t < e and (CLASS[d[t]] & C_TCHAR):
                t += 1
            if t == s:
                f.te_malformed = True
            elif t == e and e - s == 7 and ieq(d + s, b"chunked", 7):
                f.te_chunked += 1
                f.te_last_chunked = True
            else:
                while t < e and is_ows(d[t]):
                    t += 1
                if t < e and d[t] != b';':
                    f.te_malformed = True
                f.te_unknown = True
                f.te_last_chunked = False
    elif nlen == 4 and ieq(d + ns, b"host", 4):
        # Host = uri-host [":" port] (RFC 9110 §7.2); empty is valid (no authority).
        f.host_count += 1
        if vs < ve and not scan_authority(d, vs, ve, False):
            f.host_invalid = True
    elif nlen == 10 and ieq(d + ns, b"connection", 10):
        # Connection = #connection-option, case-insensitive (RFC 9110 §7.6.1).
        p = vs
        while True:
            s = list_member(d, &p, ve, &e, &f.conn_empty)
            if s == -2:
                return E_CONNECTION_MALFORMED
            if s < 0:
                break
            if e - s == 5 and ieq(d + s, b"close", 5):
                f.conn_close = True
            elif e - s == 10 and ieq(d + s, b"keep-alive", 10):
                f.conn_keep_alive = True
            elif e - s == 7 and ieq(d + s, b"upgrade", 7):
                f.conn_upgrade = True
    elif nlen == 6 and ieq(d + ns, b"expect", 6):
        # Expect = #expectation; "100-continue" is case-insensitive (RFC 9110 §10.1.1).
        p = vs
        while True:
            s = list_member(d, &p, ve, &e, &f.expect_empty)
            if s == -2:
                return E_EXPECT_MALFORMED
            if s < 0:
                break
            if e - s == 12 and ieq(d + s, b"100-continue", 12):
                f.expect_continue = True
    elif nlen == 7 and ieq(d + ns, b"upgrade", 7):
        # Upgrade = #protocol (RFC 9110 §7.8): only a list naming a protocol offers an upgrade;
        # the protocols themselves are the upgrading handler's to read.
        p = vs
        while True:
            s = list_member(d, &p, ve, &e, &f.upgrade_empty)
            if s == -2:
                return E_UPGRADE_MALFORMED
            if s < 0:
                break
            f.upgrade_field = True
    return E_OK


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int scan_fields(const unsigned char* d, Py_ssize_t p, Py_ssize_t n, FieldLines* f) noexcept:
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
        if c == CR:
            if d[p + 1] != LF:
                return E_BARE_CR
            return E_OK if p + 2 == n else E_NOT_ONE_HEAD
        if c == SP or c == HTAB:
            # obs-fold, or whitespace before the first field line (RFC 9112 §5.2, §2.2): reject.
            return E_OBS_FOLD
        ns = p
        while CLASS[d[p]] & C_TCHAR:
            p += 1
        ne = p
        c = d[p]
        if c != b':':
            if c == SP or c == HTAB:
                return E_SPACE_BEFORE_COLON
            if c == CR and ns != ne:
                return E_NO_COLON
            if c == LF:
                return E_BARE_LF
            return E_NAME
        if ns == ne:
            return E_NAME
        p += 1
        while is_ows(d[p]):
            p += 1
        vs = p
        p = skip_value(d, p, n)
        c = d[p]
        if c != CR:
            return E_BARE_LF if c == LF else E_VALUE
        if d[p + 1] != LF:
            return E_BARE_CR
        ve = p
        while ve > vs and is_ows(d[ve - 1]):
            ve -= 1
        p += 2
        if f.count == f.capacity:
            if f.count >= f.max_count:
                return E_TOO_MANY_FIELDS
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
                return E_NOMEM
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
        if err != E_OK:
            return err


