# cython: language_level=3
"""The ASGI adapter's C helpers (see asgi.pxd)."""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_1BYTE_KIND, PyUnicode_Check, PyUnicode_DATA
from cpython.unicode cimport PyUnicode_GET_LENGTH, PyUnicode_KIND
from libc.stdint cimport uint32_t
from libc.string cimport memcmp

from cyserve._core.http.framing cimport BodyWriter
from cyserve._core.http.grammar cimport (C_TCHAR, C_VALUE, CLASS, LOWER, absolute_path_start,
                                         ieq, list_element)
from cyserve._core.http.head cimport Head
from cyserve._core.http.response cimport R_DONE, R_STREAMING, ResponseWriter
from cyserve._core.http.serialise cimport BODY_CHUNKED
from cyserve._core.http.server cimport ServerRole


# Well-known field names, lower-case, as shared bytes objects: a request made of these costs no
# allocation for its names.  Sorted by length: names of length L are
# _NAMES[_first[L]:_first[L + 1]].
_NAMES = tuple(sorted((
    b"te", b"dnt", b"host", b"date", b"etag", b"vary", b"range", b"accept", b"cookie", b"origin",
    b"expect", b"pragma", b"referer", b"upgrade", b"if-range", b"priority", b"sec-ch-ua",
    b"connection", b"keep-alive", b"user-agent", b"x-real-ip", b"content-type", b"x-request-id",
    b"authorization", b"cache-control", b"if-none-match", b"accept-encoding", b"accept-language",
    b"content-length", b"sec-fetch-dest", b"sec-fetch-mode", b"sec-fetch-site", b"sec-fetch-user",
    b"x-forwarded-for", b"content-encoding", b"sec-ch-ua-mobile", b"x-requested-with",
    b"x-forwarded-host", b"transfer-encoding", b"if-modified-since", b"x-forwarded-proto",
    b"sec-websocket-key", b"sec-ch-ua-platform", b"sec-websocket-version",
    b"sec-websocket-protocol", b"sec-websocket-extensions", b"upgrade-insecure-requests",
), key=len))
cdef enum:
    _MAX_NAME_LEN = 32
    _MAX_NAMES = 64
cdef Py_ssize_t _first[_MAX_NAME_LEN + 2]
cdef const char* _spelled[_MAX_NAMES]


cdef int _init_names() except -1:
    cdef Py_ssize_t k, length
    lengths = [len(name) for name in _NAMES]
    if len(lengths) > _MAX_NAMES or lengths[-1] > _MAX_NAME_LEN:
        raise AssertionError("_NAMES outgrew its C tables")
    for length in range(_MAX_NAME_LEN + 2):
        _first[length] = sum(1 for n in lengths if n < length)
    for k in range(len(lengths)):
        # The tuple keeps every name alive for the module's lifetime.
        _spelled[k] = PyBytes_AS_STRING(<bytes>_NAMES[k])
    return 0


_init_names()


@cython.boundscheck(False)
@cython.wraparound(False)
cdef bytes _lower_name(const unsigned char* d, uint32_t s, uint32_t n):
    cdef char buf[_MAX_NAME_LEN]
    cdef uint32_t k
    cdef Py_ssize_t i
    cdef bytes out
    if n <= _MAX_NAME_LEN:
        for k in range(n):
            buf[k] = <char>LOWER[d[s + k]]
        for i in range(_first[n], _first[n + 1]):
            if memcmp(buf, _spelled[i], n) == 0:
                return <bytes>_NAMES[i]
        return PyBytes_FromStringAndSize(buf, n)
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef char* o = PyBytes_AS_STRING(out)
    for k in range(n):
        o[k] = <char>LOWER[d[s + k]]
    return out


@cython.boundscheck(False)
@cython.wraparound(False)
cpdef list scope_headers(Head head):
    """``[(name, value)]`` bytes pairs of ``head``'s fields, names lower-cased (ASGI 3), in
    received order; surrounding whitespace is not part of a value (RFC 9110 §5.5)."""
    cdef const unsigned char* d = <const unsigned char*>PyBytes_AS_STRING(head.raw)
    cdef uint32_t* o = head._offsets
    cdef Py_ssize_t i, n = head.header_count
    cdef list items = [None] * n
    for i in range(n):
        items[i] = (_lower_name(d, o[4 * i], o[4 * i + 1] - o[4 * i]),
                    PyBytes_FromStringAndSize(<const char*>d + o[4 * i + 2],
                                              o[4 * i + 3] - o[4 * i + 2]))
    return items


cpdef tuple target_bytes(Head head):
    """``(raw_path, query_string)``: the request-target before and after ``?`` as bytes; for an
    absolute-form target the path after the authority (``/`` when empty), RFC 9112 §3.2.2."""
    cdef const unsigned char* d = <const unsigned char*>PyBytes_AS_STRING(head.raw)
    cdef Py_ssize_t s = head._target_start
    cdef Py_ssize_t e = head._query_start - 1 if head._query_start >= 0 else head._target_end
    cdef Py_ssize_t a
    cdef bytes query = b""
    if head._query_start >= 0:
        query = PyBytes_FromStringAndSize(<const char*>d + head._query_start,
                                          head._target_end - head._query_start)
    if e > s and d[s] != b'/' and d[s] != b'*':
        a = absolute_path_start(d, s, e)
        if a >= 0:
            if a == e:
                return b"/", query
            s = a
    return PyBytes_FromStringAndSize(<const char*>d + s, e - s), query


cdef const unsigned char* _field_bytes(object text, Py_ssize_t* size, list keep) except NULL:
    """The bytes of a field name or value given as ``bytes`` or a latin-1 ``str`` (anything
    else is made ``bytes``, kept alive in ``keep``)."""
    if type(text) is bytes:
        size[0] = PyBytes_GET_SIZE(text)
        return <const unsigned char*>PyBytes_AS_STRING(text)
    if PyUnicode_Check(text):
        if PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND:
            raise ValueError(f"header {text!r} is not latin-1")
        size[0] = PyUnicode_GET_LENGTH(text)
        return <const unsigned char*>PyUnicode_DATA(text)
    data = bytes(text)
    keep.append(data)
    size[0] = PyBytes_GET_SIZE(data)
    return <const unsigned char*>PyBytes_AS_STRING(data)


@cython.boundscheck(False)
@cython.wraparound(False)
cpdef long long declared_length(object fields) except -2:
    """The Content-Length among ``fields`` (``(name, value)`` pairs, bytes or str), or -1 when
    there is none.  ``ValueError`` for a value that is not 1*DIGIT, or for two that differ (RFC
    9110 §8.6: a list of identical values is one length; anything else is no length at all)."""
    cdef long long found = -1, value
    cdef Py_ssize_t nlen, vlen, i
    cdef const unsigned char* n
    cdef const unsigned char* v
    cdef list keep = []
    for pair in fields:
        name, text = pair
        n = _field_bytes(name, &nlen, keep)
        if nlen != 14 or not ieq(n, b"content-length", 14):
            continue
        v = _field_bytes(text, &vlen, keep)
        if vlen == 0 or vlen > 18:
            raise ValueError(f"content-length {text!r} is not a length (RFC 9110 §8.6)")
        value = 0
        for i in range(vlen):
            if v[i] < 48 or v[i] > 57:
                raise ValueError(f"content-length {text!r} is not a length (RFC 9110 §8.6)")
            value = value * 10 + (v[i] - 48)
        if found >= 0 and found != value:
            raise ValueError("two different content-length values (RFC 9110 §8.6)")
        found = value
    return found


cpdef bint offers_trailers(Head head) except -1:
    """The request's ``TE`` field lists ``trailers``: the client will read a trailer section
    (RFC 9110 §10.1.4), so a response may carry one."""
    cdef const unsigned char* d = <const unsigned char*>PyBytes_AS_STRING(head.raw)
    cdef uint32_t* o = head._offsets
    cdef Py_ssize_t i, pos, start, stop, end
    for i in range(head.header_count):
        if o[4 * i + 1] - o[4 * i] != 2 or not ieq(d + o[4 * i], b"te", 2):
            continue
        pos = o[4 * i + 2]
        end = o[4 * i + 3]
        while True:
            start = list_element(d, &pos, end, &stop)
            if start < 0:
                break
            # t-codings may carry a weight ("trailers" takes none, but be lenient on OWS).
            if stop - start >= 8 and ieq(d + start, b"trailers", 8) and (
                    stop - start == 8 or d[start + 8] == b';' or d[start + 8] == b' '):
                return True
    return False


@cython.boundscheck(False)
@cython.wraparound(False)
cpdef int end_with_trailers(ServerRole conn, object fields) except -1:
    """End the streamed response of ``conn`` with ``fields`` as its trailer section (RFC 9112
    §7.1.2): the last chunk, the fields, the empty line, in one write.

    The response must be chunked (started without a length, to an HTTP/1.1 client); a response
    that sends no body (HEAD, 204, 304) ends as ``end_stream`` ends it, without trailers.
    ``ValueError`` for a field that is not a token and a latin-1 value without controls (RFC 9110
    §5.5), or one that may not be a trailer because it frames or routes the message (RFC 9110
    §6.5.1: Content-Length, Transfer-Encoding, Connection, Host, TE, Trailer)."""
    cdef ResponseWriter writer = conn._response
    cdef BodyWriter body = writer._body
    cdef Py_ssize_t nlen, vlen, i
    cdef const unsigned char* n
    cdef const unsigned char* v
    cdef list keep = []
    cdef list out
    if writer.state != R_STREAMING:
        raise RuntimeError("trailers need a streamed response in progress")
    if writer._silent or body.framing != BODY_CHUNKED:
        conn.end_stream()
        return 0
    out = [b"0\r\n"]
    for pair in fields:
        name, text = pair
        n = _field_bytes(name, &nlen, keep)
        v = _field_bytes(text, &vlen, keep)
        if nlen == 0:
            raise ValueError("empty trailer name")
        for i in range(nlen):
            if not CLASS[n[i]] & C_TCHAR:
                raise ValueError(f"trailer name {name!r} is not a token (RFC 9110 §5.1)")
        for i in range(vlen):
            if not CLASS[v[i]] & C_VALUE:
                raise ValueError(f"value of trailer {name!r} contains the control byte "
                                 f"0x{v[i]:02x} (RFC 9110 §5.5)")
        if ((nlen == 14 and ieq(n, b"content-length", 14))
                or (nlen == 17 and ieq(n, b"transfer-encoding", 17))
                or (nlen == 10 and ieq(n, b"connection", 10))
                or (nlen == 4 and ieq(n, b"host", 4))
                or (nlen == 2 and ieq(n, b"te", 2))
                or (nlen == 7 and ieq(n, b"trailer", 7))):
            raise ValueError(f"{name!r} may not be sent as a trailer (RFC 9110 §6.5.1)")
        out.append(PyBytes_FromStringAndSize(<const char*>n, nlen) + b": "
                   + PyBytes_FromStringAndSize(<const char*>v, vlen) + b"\r\n")
    out.append(b"\r\n")
    if not writer._out.closed:
        writer._out.send(b"".join(out))
    # The writer's end, with the last chunk already written: nothing of the body is left, so
    # the connection is kept as end() would keep it.
    writer.state = R_DONE
    if conn._observer is not None:
        conn._report()
    return 0
