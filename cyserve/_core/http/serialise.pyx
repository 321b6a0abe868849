# cython: language_level=3
"""Head serialisation for both roles: response heads (precomputed status lines, a per-second Date
cache) and request heads, over one validated field writer (see serialise.pxd)."""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport (
    PyUnicode_1BYTE_KIND, PyUnicode_Check, PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_KIND,
)
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy
from libc.time cimport time, time_t

from cyserve._core.http.grammar cimport C_TCHAR, C_VALUE, CLASS, ieq, list_element

from http import HTTPStatus

cdef extern from "time.h" nogil:
    struct tm:
        int tm_sec, tm_min, tm_hour, tm_mday, tm_mon, tm_year, tm_wday
    tm* gmtime_r(const time_t* timep, tm* result)


# Status lines for every code 100..599; unregistered codes get an empty reason (RFC 9112 §4
# allows it: the reason phrase is optional and clients must ignore it).
cdef list _STATUS_LINES = [None] * 600
for _code in range(100, 600):
    try:
        _reason = HTTPStatus(_code).phrase
    except ValueError:
        _reason = ""
    _STATUS_LINES[_code] = f"HTTP/1.1 {_code} {_reason}\r\n".encode("latin-1")

cdef bytes _CONTENT_TYPE = b"Content-Type: "
cdef bytes _CHUNKED = b"Transfer-Encoding: chunked\r\n"
cdef bytes _CONN_CLOSE = b"Connection: close\r\n"
cdef bytes _CONN_KEEP_ALIVE = b"Connection: keep-alive\r\n"
cdef bytes _CONN_UPGRADE = b"Connection: Upgrade\r\n"
cdef bytes _VERSION_TAIL = b" HTTP/1.1\r\n"

# ---- Date (RFC 9110 §6.6.1: an origin server with a clock MUST send Date), cached per second ----
cdef const char* _DAYS = b"SunMonTueWedThuFriSat"
cdef const char* _MONTHS = b"JanFebMarAprMayJunJulAugSepOctNovDec"
cdef char _date_line[64]
cdef Py_ssize_t _date_len = 0
cdef time_t _date_second = -1


cdef inline void _two(char* p, int v) noexcept:
    p[0] = <char>(48 + v // 10)
    p[1] = <char>(48 + v % 10)


cdef void _refresh_date(time_t now) noexcept:
    # "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" (IMF-fixdate, RFC 9110 §5.6.7), locale-free.
    global _date_len, _date_second
    cdef tm t
    cdef char* p = _date_line
    gmtime_r(&now, &t)
    memcpy(p, b"Date: ", 6)
    memcpy(p + 6, _DAYS + 3 * t.tm_wday, 3)
    memcpy(p + 9, b", ", 2)
    _two(p + 11, t.tm_mday)
    p[13] = b' '
    memcpy(p + 14, _MONTHS + 3 * t.tm_mon, 3)
    p[17] = b' '
    cdef int year = t.tm_year + 1900
    _two(p + 18, year // 100)
    _two(p + 20, year % 100)
    p[22] = b' '
    _two(p + 23, t.tm_hour)
    p[25] = b':'
    _two(p + 26, t.tm_min)
    p[28] = b':'
    _two(p + 29, t.tm_sec)
    memcpy(p + 31, b" GMT\r\n", 6)
    _date_len = 37
    _date_second = now


def date_line() -> bytes:
    """The current ``Date:`` field line (for tests and the client)."""
    cdef time_t now = time(NULL)
    if now != _date_second:
        _refresh_date(now)
    return PyBytes_FromStringAndSize(_date_line, _date_len)


cdef int body_framing(int status, bint length_known, bint http10) noexcept:
    # RFC 9110 §15.2, §15.3.5, §15.4.5: 1xx, 204 and 304 carry no content; RFC 9112 §6.1: a
    # chunked response only to an HTTP/1.1 peer; HTTP/1.0 streams are delimited by closing.
    if status < 200 or status == 204 or status == 304:
        return BODY_NONE
    if length_known:
        return BODY_LENGTH
    if http10:
        return BODY_CLOSE
    return BODY_CHUNKED


@cython.final
cdef class HeadWriter:
    """Per-connection head serialiser; see serialise.pxd."""

    def __cinit__(self, server_name=None, bint date=True):
        cdef bytes encoded
        cdef const unsigned char* v
        cdef Py_ssize_t i, n
        self._cap = 1024
        self._buf = <unsigned char*>malloc(self._cap)
        if self._buf == NULL:
            raise MemoryError()
        self._len = 0
        self.user_close = False
        self._date = date
        if server_name is None:
            self._server_line = b""
        else:
            encoded = str(server_name).encode("latin-1")
            v = <const unsigned char*>PyBytes_AS_STRING(encoded)
            n = PyBytes_GET_SIZE(encoded)
            # The same field-value check as _put_field's (RFC 9110 §5.5): no control but HTAB,
            # and no DEL, in the Server value written into every response head.
            i = 0
            while i < n and CLASS[v[i]] & C_VALUE:
                i += 1
            if i < n:
                raise ValueError(f"value of header 'Server' contains the control byte "
                                 f"0x{v[i]:02x} (RFC 9110 §5.5: only VCHAR, SP, HTAB and obs-text)")
            self._server_line = b"Server: " + encoded + b"\r\n"

    def __dealloc__(self):
        if self._buf != NULL:
            free(self._buf)
            self._buf = NULL

    cdef int _put(self, const char* data, Py_ssize_t n) except -1:
        cdef Py_ssize_t need = self._len + n
        cdef Py_ssize_t cap = self._cap
        cdef unsigned char* grown
        if need > cap:
            while cap < need:
                cap *= 2
            grown = <unsigned char*>realloc(self._buf, cap)
            if grown == NULL:
                raise MemoryError()
            self._buf = grown
            self._cap = cap
        memcpy(self._buf + self._len, data, n)
        self._len = need
        return 0

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int _put_field(self, object name, object value) except -1:
        cdef const unsigned char* n
        cdef const unsigned char* v
        cdef Py_ssize_t nlen, vlen, i, pos, start, stop
        cdef object name_b, value_b
        # Names and values are latin-1 on the wire (RFC 9110 §5.5); one-byte str are read in
        # place, without an encoded copy.
        if PyUnicode_Check(name):
            if PyUnicode_KIND(name) != PyUnicode_1BYTE_KIND:
                raise ValueError(f"header name {name!r} is not latin-1")
            n = <const unsigned char*>PyUnicode_DATA(name)
            nlen = PyUnicode_GET_LENGTH(name)
        else:
            name_b = bytes(name)
            n = <const unsigned char*>PyBytes_AS_STRING(name_b)
            nlen = PyBytes_GET_SIZE(name_b)
            name = name_b
        if PyUnicode_Check(value):
            if PyUnicode_KIND(value) != PyUnicode_1BYTE_KIND:
                raise ValueError(f"value of header {name!r} is not latin-1")
            v = <const unsigned char*>PyUnicode_DATA(value)
            vlen = PyUnicode_GET_LENGTH(value)
        elif isinstance(value, (bytes, bytearray)):
            value_b = bytes(value)
            v = <const unsigned char*>PyBytes_AS_STRING(value_b)
            vlen = PyBytes_GET_SIZE(value_b)
        else:
            value_b = str(value).encode("latin-1")
            v = <const unsigned char*>PyBytes_AS_STRING(value_b)
            vlen = PyBytes_GET_SIZE(value_b)
        if nlen == 0:
            raise ValueError("empty header name")
        for i in range(nlen):
            if not CLASS[n[i]] & C_TCHAR:  # tchar, RFC 9110 §5.6.2
                raise ValueError(f"header name {name!r} is not a token (RFC 9110 §5.1)")
        for i in range(vlen):
            # field-value = *( field-vchar / SP / HTAB / obs-text ) (RFC 9110 §5.5): every other
            # control and DEL is invalid, and CR, LF and NUL would also end or corrupt the field
            # line (header injection).  A peer -- cyserve's own parser among them -- refuses a
            # head carrying one, so it is the caller's mistake, caught here.
            if not CLASS[v[i]] & C_VALUE:
                raise ValueError(f"value of header {name!r} contains the control byte "
                                 f"0x{v[i]:02x} (RFC 9110 §5.5: only VCHAR, SP, HTAB and obs-text)")
        # Framing and persistence fields are decided by cyserve alone (one place, RFC 9112 §6.3).
        if nlen == 14 and ieq(n, b"content-length", 14):
            return 0
        if nlen == 17 and ieq(n, b"transfer-encoding", 17):
            return 0
        if nlen == 10 and ieq(n, b"connection", 10):
            # Connection is a comma list of options (RFC 9110 §7.6.1): any "close" ends the
            # connection after this response; the field itself is written by cyserve.
            pos = 0
            while True:
                start = list_element(v, &pos, vlen, &stop)
                if start < 0:
                    break
                if stop - start == 5 and ieq(v + start, b"close", 5):
                    self.user_close = True
            return 0
        self._put(<const char*>n, nlen)
        self._put(b": ", 2)
        self._put(<const char*>v, vlen)
        self._put(b"\r\n", 2)
        return 0

    @cython.cdivision(True)
    cdef int _put_framing(self, int framing, long long content_length) except -1:
        # RFC 9112 §6.1-6.2: exactly one framing field; content_length >= 0 with BODY_LENGTH.
        # The line is built right to left in one stack buffer and copied with one _put.
        cdef char line[48]
        cdef Py_ssize_t p = 46
        cdef unsigned long long cl = <unsigned long long>content_length
        if framing == BODY_LENGTH:
            line[46] = 13
            line[47] = 10
            while True:
                p -= 1
                line[p] = <char>(48 + cl % 10)
                cl //= 10
                if cl == 0:
                    break
            p -= 16
            memcpy(line + p, b"Content-Length: ", 16)
            self._put(line + p, 48 - p)
        elif framing == BODY_CHUNKED:
            self._put(PyBytes_AS_STRING(_CHUNKED), PyBytes_GET_SIZE(_CHUNKED))
        return 0

    cdef bytes head(self, int status, object fields, object content_type, int framing,
                    long long content_length, int conn, object body):
        cdef bytes line
        cdef time_t now
        cdef Py_ssize_t blen
        if status < 100 or status > 599:
            raise ValueError(f"status must be 100..599, got {status}")
        self._len = 0
        self.user_close = False
        line = <bytes>_STATUS_LINES[status]
        self._put(PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line))
        if self._date:
            now = time(NULL)
            if now != _date_second:
                _refresh_date(now)
            self._put(_date_line, _date_len)
        if PyBytes_GET_SIZE(self._server_line):
            self._put(PyBytes_AS_STRING(self._server_line), PyBytes_GET_SIZE(self._server_line))
        if content_type is not None:
            self._put_field("Content-Type", content_type)
        if fields:
            for name, value in fields:
                self._put_field(name, value)
        self._put_framing(framing, content_length)
        if conn == CONN_UPGRADE:
            # RFC 9110 §7.8: the 101's own Connection option; the handler's cannot override it.
            self._put(PyBytes_AS_STRING(_CONN_UPGRADE), PyBytes_GET_SIZE(_CONN_UPGRADE))
        elif conn == CONN_CLOSE or self.user_close:
            self._put(PyBytes_AS_STRING(_CONN_CLOSE), PyBytes_GET_SIZE(_CONN_CLOSE))
        elif conn == CONN_KEEP_ALIVE:
            self._put(PyBytes_AS_STRING(_CONN_KEEP_ALIVE), PyBytes_GET_SIZE(_CONN_KEEP_ALIVE))
        self._put(b"\r\n", 2)
        if body is not None and type(body) is bytes:
            blen = PyBytes_GET_SIZE(body)
            if blen <= COALESCE_BODY_BYTES:
                self._put(PyBytes_AS_STRING(body), blen)
        return PyBytes_FromStringAndSize(<char*>self._buf, self._len)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef bytes request_head(self, str method, str target, object fields, int framing,
                            long long content_length, bint close, object body, bint upgrade):
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
        self._len = 0
        self.user_close = False
        self._put(<const char*>p, n)
        self._put(b" ", 1)
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
        self._put(<const char*>p, n)
        self._put(PyBytes_AS_STRING(_VERSION_TAIL), PyBytes_GET_SIZE(_VERSION_TAIL))
        if fields:
            for name, value in fields:
                self._put_field(name, value)
        self._put_framing(framing, content_length)
        if upgrade:
            # RFC 9110 §7.8: a request that asks to switch protocols lists "upgrade" in
            # Connection (the caller's Upgrade field names the protocol); RFC 6455 §4.1 item 6.
            self._put(PyBytes_AS_STRING(_CONN_UPGRADE), PyBytes_GET_SIZE(_CONN_UPGRADE))
        elif close or self.user_close:
            self._put(PyBytes_AS_STRING(_CONN_CLOSE), PyBytes_GET_SIZE(_CONN_CLOSE))
        self._put(b"\r\n", 2)
        if body is not None and PyBytes_GET_SIZE(body) <= COALESCE_BODY_BYTES:
            self._put(PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
        return PyBytes_FromStringAndSize(<char*>self._buf, self._len)

    # Python face, for tests and the client.
    def serialise(self, int status, fields=None, content_type=None, long long content_length=-1,
                  bint http10=False, int conn=CONN_NONE, body=None) -> bytes:
        """Serialise a head as the protocol would (the body is appended when small)."""
        framing = body_framing(status, content_length >= 0, http10)
        return self.head(status, fields, content_type, framing, content_length, conn, body)


def serialise_request(str method, str target, fields=None, long long content_length=-1,
                      bint chunked=False, bint close=False, bytes body=None,
                      bint upgrade=False) -> bytes:
    """Python face of ``request_head`` (tests, and anything that writes a request by hand)."""
    cdef int framing = BODY_CHUNKED if chunked else (BODY_LENGTH if content_length >= 0 else BODY_NONE)
    return HeadWriter(None).request_head(method, target, fields, framing, content_length, close, body,
                                         upgrade)


def py_body_framing(int status, bint length_known, bint http10) -> int:
    """Expose ``body_framing`` to tests."""
    return body_framing(status, length_known, http10)


PY_BODY_NONE = BODY_NONE
PY_BODY_LENGTH = BODY_LENGTH
PY_BODY_CHUNKED = BODY_CHUNKED
PY_BODY_CLOSE = BODY_CLOSE
PY_CONN_NONE = CONN_NONE
PY_CONN_CLOSE = CONN_CLOSE
PY_CONN_KEEP_ALIVE = CONN_KEEP_ALIVE
PY_CONN_UPGRADE = CONN_UPGRADE
