# cython: language_level=3
"""Request-head serialisation (see reqhead.pxd): the method and target checks, then the writer."""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport (
    PyUnicode_1BYTE_KIND, PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_KIND,
)

from cyserve._core.chars cimport C_TCHAR, CLASS
from cyserve._core.writer cimport BODY_CHUNKED, BODY_LENGTH, BODY_NONE, COALESCE_BODY_BYTES, HeadWriter

cdef bytes _CLOSE_LINE = b"Connection: close\r\n"
cdef bytes _VERSION_TAIL = b" HTTP/1.1\r\n"


@cython.boundscheck(False)
@cython.wraparound(False)
cdef bytes request_head(HeadWriter w, str method, str target, object fields, int framing,
                        long long content_length, bint close, object body):
    cdef const unsigned char* p
    cdef Py_ssize_t n, i
    # method = token (RFC 9110 §9.1); request-target has no whitespace or CTL (RFC 9112 §3.2):
    # both are checked here so no caller can smuggle a second request line through them.
    # A ``str`` argument may be None: PyUnicode_KIND/DATA on it would read past a non-str object.
    if method is None or target is None:
        raise TypeError("method and target must be str, not None")
    if PyUnicode_KIND(method) != PyUnicode_1BYTE_KIND:
        raise ValueError(f"method {method!r} is not a token")
    p = <const unsigned char*>PyUnicode_DATA(method)
    n = PyUnicode_GET_LENGTH(method)
    if n == 0:
        raise ValueError("empty method")
    for i in range(n):
        if not CLASS[p[i]] & C_TCHAR:  # the method is a token, RFC 9110 §5.6.2
            raise ValueError(f"method {method!r} is not a token (RFC 9110 §9.1)")
    w._len = 0
    w.user_close = False
    w._put(<const char*>p, n)
    w._put(b" ", 1)
    if PyUnicode_KIND(target) != PyUnicode_1BYTE_KIND:
        raise ValueError(f"request target {target!r} is not ASCII (percent-encode it)")
    p = <const unsigned char*>PyUnicode_DATA(target)
    n = PyUnicode_GET_LENGTH(target)
    if n == 0:
        raise ValueError("empty request target")
    for i in range(n):
        if p[i] <= 0x20 or p[i] >= 0x7f:
            raise ValueError(f"request target {target!r} contains whitespace, a control or a "
                             "non-ASCII byte (RFC 9112 §3.2)")
    w._put(<const char*>p, n)
    w._put(PyBytes_AS_STRING(_VERSION_TAIL), PyBytes_GET_SIZE(_VERSION_TAIL))
    if fields:
        for name, value in fields:
            w._put_field(name, value)
    w._put_framing(framing, content_length)
    if close or w.user_close:
        w._put(PyBytes_AS_STRING(_CLOSE_LINE), PyBytes_GET_SIZE(_CLOSE_LINE))
    w._put(b"\r\n", 2)
    if body is not None and PyBytes_GET_SIZE(body) <= COALESCE_BODY_BYTES:
        w._put(PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
    return PyBytes_FromStringAndSize(<char*>w._buf, w._len)


def serialise_request(str method, str target, fields=None, long long content_length=-1,
                      bint chunked=False, bint close=False, bytes body=None) -> bytes:
    """Python face of ``request_head`` (tests, and anything that writes a request by hand)."""
    cdef int framing = BODY_CHUNKED if chunked else (BODY_LENGTH if content_length >= 0 else BODY_NONE)
    return request_head(HeadWriter(None), method, target, fields, framing, content_length, close, body)
