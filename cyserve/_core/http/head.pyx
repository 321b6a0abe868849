# cython: language_level=3
"""The lazy Python view of a parsed head.

The parser (``parser.pyx``) leaves ``raw`` and the field offsets in a ``Head``; nothing Python is
made until a handler asks.  Well-known field names come back as interned ``str`` objects, and
``get``/``get_all`` compare names in C without building the header list.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeLatin1
from libc.stdint cimport uint32_t

from cyserve._core.http.grammar cimport LOWER, absolute_path_start, ieq


cdef extern from "Python.h":
    # For an ASCII str this returns its own buffer: no allocation.
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL


# Indexed by the FRAMING_* codes (head.pxd), for __repr__.
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
            if ieq(d + s, common + _common_offset[k], n):
                return <str>_COMMON_NAMES[k]
    if n > 64:
        return PyUnicode_DecodeASCII(<const char*>d + s, n, NULL).lower()
    for k in range(n):
        buf[k] = <char>LOWER[d[s + k]]
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
            if LOWER[d[o[0] + k]] != LOWER[want[k]]:
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
            a = absolute_path_start(d, s, e)
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

    def raw_items(self):
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
