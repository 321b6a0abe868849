# cython: language_level=3
"""HTTP/1.1 head parser: find the end of a head incrementally, then parse it in one C pass.

Two stages, both over raw bytes (DESIGN §"One request", steps 2-3):

1. ``scanner.HeadScanner.find_end`` looks for CRLF CRLF in a growing buffer, resuming where it
   stopped, and enforces the size limits (414, 431) and the bare-LF rule (RFC 9112 §2.2) before a
   head is whole.
2. ``parse_request`` / ``parse_response`` (here) walk the whole head once: the start line
   (``startline``), then every field line into four uint32 offsets (``fields``), then decide
   framing, keep-alive, Host, Expect and Upgrade.  Nothing Python is made in the walk; ``Head``
   (``head``) builds ``str`` objects only when a handler asks.

The scanning functions return an error code (``grammar.ParseError``) instead of raising; the code
becomes ``ProtocolError(message, status)`` here, after the walk, so the loops stay pure C.

Strictness follows RFC 9112/9110 wherever a recipient may choose; every choice that differs from
httptools (llhttp) or h11 is listed with its reason in ``tests/vectors/parser_differences.py``.

This module is also the parser's single public entry point: it re-exports ``Head``,
``HeadScanner``, ``ParserLimits`` and ``FRAMING_*`` for Python (below) and for ``cimport``
(``parser.pxd``).
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdint cimport uint32_t
from libc.string cimport memcpy

from cyserve._core.http.grammar cimport CR, LF
from cyserve._core.http.grammar cimport (
    E_CL_AND_TE, E_HEAD_TOO_LONG, E_HOST_DUPLICATE, E_HOST_INVALID, E_HOST_MISSING,
    E_NOT_ONE_HEAD, E_OK, E_TE_CHUNKED_NOT_LAST, E_TE_HTTP10, E_TE_MALFORMED, E_TE_UNKNOWN,
    raise_error,
)
from cyserve._core.http.fields cimport FieldLines, scan_fields
from cyserve._core.http.startline cimport (
    M_CONNECT, M_DELETE, M_GET, M_HEAD, M_OPTIONS, M_OTHER, M_PATCH, M_POST, M_PUT, M_TRACE,
    StartLine, scan_request_line, scan_status_line,
)


# Headers kept on the C stack while parsing (2 KiB); a head with more (only possible when
# max_header_count is raised above it) moves to a growing PyMem block.
cdef enum:
    _STACK_FIELDS = 128

# For callers that pass no limits: the server's defaults (ParserLimits() reads cyserve.config).
cdef ParserLimits _DEFAULT_LIMITS = ParserLimits()


cdef inline str _method_str(const unsigned char* d, Py_ssize_t n, int method_id):
    # The registered methods return the module's interned constants: no allocation.
    if method_id == M_GET:
        return "GET"
    if method_id == M_POST:
        return "POST"
    if method_id == M_HEAD:
        return "HEAD"
    if method_id == M_PUT:
        return "PUT"
    if method_id == M_DELETE:
        return "DELETE"
    if method_id == M_PATCH:
        return "PATCH"
    if method_id == M_OPTIONS:
        return "OPTIONS"
    if method_id == M_CONNECT:
        return "CONNECT"
    if method_id == M_TRACE:
        return "TRACE"
    return PyUnicode_DecodeASCII(<const char*>d, n, NULL)


cdef Head _parse(bytes raw, ParserLimits limits, bint response_mode, bint head_request):
    cdef const unsigned char* d
    cdef Py_ssize_t n
    cdef StartLine sl
    cdef FieldLines f
    cdef uint32_t stack_offsets[4 * _STACK_FIELDS]
    cdef int err
    cdef Head head
    if raw is None:
        raise TypeError("raw must be bytes, not None")
    if limits is None:
        limits = _DEFAULT_LIMITS
    d = <const unsigned char*>PyBytes_AS_STRING(raw)
    n = PyBytes_GET_SIZE(raw)
    # Everything below relies on this sentinel (see scan_fields).
    if n < 4 or d[n - 4] != CR or d[n - 3] != LF or d[n - 2] != CR or d[n - 1] != LF:
        raise_error(E_NOT_ONE_HEAD)
    if n > limits.max_head_bytes:
        raise_error(E_HEAD_TOO_LONG)
    sl.query_start = -1
    sl.status = 0
    sl.reason_start = sl.reason_end = 0
    sl.target_start = sl.target_end = sl.method_end = 0
    sl.method_id = M_OTHER
    if response_mode:
        err = scan_status_line(d, &sl)
    else:
        err = scan_request_line(d, n, limits.max_request_line_bytes, &sl)
    if err != E_OK:
        raise_error(err)

    f.offsets = stack_offsets
    f.count = 0
    f.capacity = _STACK_FIELDS if limits.max_header_count > _STACK_FIELDS else limits.max_header_count
    f.max_count = limits.max_header_count
    f.heap = False
    f.cl_count = f.te_lines = f.te_elements = f.te_chunked = f.host_count = 0
    f.te_empty = f.conn_empty = f.expect_empty = f.upgrade_empty = 0
    f.content_length = -1
    f.te_last_chunked = f.te_unknown = f.te_malformed = f.host_invalid = False
    f.conn_close = f.conn_keep_alive = f.conn_upgrade = False
    f.expect_continue = f.upgrade_field = False
    try:
        err = scan_fields(d, sl.fields_start, n, &f)
        if err == E_OK:
            err = _decide(&sl, &f, response_mode)
        if err != E_OK:
            raise_error(err)
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


cdef int _decide(StartLine* sl, FieldLines* f, bint response_mode) noexcept:
    """Rules that need every field line: framing validity and Host (request mode)."""
    cdef int err
    if f.te_lines:
        # Both framings at once is how requests are smuggled: refused in both modes (RFC 9112
        # §6.1 lets a server reject it; for responses this is stricter than "TE wins", §6.3).
        if f.cl_count:
            return E_CL_AND_TE
        # An HTTP/1.0 message with Transfer-Encoding has faulty framing (RFC 9112 §6.1).
        if sl.version == 10:
            return E_TE_HTTP10
        err = _decide_te(f)
        if err != E_OK:
            return err
    if not response_mode:
        # RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any request with more
        # than one Host or an invalid one.
        if f.host_count > 1:
            return E_HOST_DUPLICATE
        if f.host_invalid:
            return E_HOST_INVALID
        if f.host_count == 0 and sl.version == 11:
            return E_HOST_MISSING
    return E_OK


cdef int _decide_te(FieldLines* f) noexcept:
    """Transfer-Encoding must end in exactly one chunked (RFC 9112 §6.3 item 4: otherwise the
    length cannot be determined -> 400); other codings are not implemented (§6.1: 501)."""
    if f.te_malformed or f.te_elements == 0:
        return E_TE_MALFORMED
    if f.te_chunked > 1 or (f.te_chunked == 1 and not f.te_last_chunked):
        return E_TE_CHUNKED_NOT_LAST
    if f.te_unknown:
        return E_TE_UNKNOWN
    return E_OK


cdef int _framing(StartLine* sl, FieldLines* f, bint response_mode, bint head_request) noexcept:
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
# Python re-exports.  A cimported name binds no Python attribute, and Cython will not let a Python
# ``import`` rebind it, so the public names of the split modules are set on this module explicitly:
# ``from cyserve._core.http.parser import Head, HeadScanner, FRAMING_CHUNKED, ...`` keeps working.

globals().update(
    Head=Head, HeadScanner=HeadScanner, ParserLimits=ParserLimits,
    FRAMING_NONE=FRAMING_NONE, FRAMING_LENGTH=FRAMING_LENGTH, FRAMING_CHUNKED=FRAMING_CHUNKED,
    FRAMING_CLOSE=FRAMING_CLOSE,
)
