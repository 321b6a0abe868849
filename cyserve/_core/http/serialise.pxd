# cython: language_level=3
"""Contract of head serialisation for both roles: response heads (status line) and request heads
(request line) over one field writer that decides framing and rejects header injection.

Framing is decided in exactly one place, ``body_framing`` (RFC 9112 §6.3, RFC 9110 §6.4.1); the
protocol writes the body bytes accordingly.  ``HeadWriter`` owns a scratch block (malloc'd in
``__cinit__``, freed in ``__dealloc__``) reused for every head on a connection.
"""

cdef enum:
    BODY_NONE = 0       # 1xx, 204, 304: no body and no framing field
    BODY_LENGTH = 1     # Content-Length: n
    BODY_CHUNKED = 2    # Transfer-Encoding: chunked (HTTP/1.1 streams of unknown length)
    BODY_CLOSE = 3      # HTTP/1.0 stream of unknown length: the connection close ends it

cdef enum:
    CONN_NONE = 0       # persistence is the version's default: no Connection field
    CONN_CLOSE = 1      # Connection: close
    CONN_KEEP_ALIVE = 2 # Connection: keep-alive (HTTP/1.0 peers that asked for it)
    CONN_UPGRADE = 3    # Connection: Upgrade (a 101 switching to the protocol in Upgrade)

# Bodies up to this size are copied behind the head so head and body leave in one write.
cdef enum:
    COALESCE_BODY_BYTES = 16384

cdef int body_framing(int status, bint length_known, bint http10) noexcept


cdef class HeadWriter:
    cdef unsigned char* _buf
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _len
    cdef bytes _server_line             # b"Server: <name>\r\n", or b"" for none
    cdef bint _date                     # write the Date field (RFC 9110 §6.6.1)
    cdef readonly bint user_close       # the last head's own fields asked for Connection: close

    # Serialise a response head: status line, Date, Server, Content-Type, the caller's fields
    # (validated; Content-Length, Transfer-Encoding and Connection are owned by cyserve and taken
    # from ``framing``/``conn``), then the framing and Connection fields and the blank line.  When
    # ``body`` is given and small, it is appended so head and body are one bytes object.
    # Raises ValueError for a control byte other than HTAB (CR, LF and NUL included) or DEL in a
    # value (RFC 9110 §5.5), a non-token name, or a non-latin-1 value.
    cdef bytes head(self, int status, object fields, object content_type, int framing,
                    long long content_length, int conn, object body)
    # Serialise a request head (the client role): "METHOD SP target SP HTTP/1.1", the caller's
    # fields (validated as above; Content-Length, Transfer-Encoding and Connection dropped: framing
    # is decided here), then the framing field (``framing`` a BODY_* value) and, when asked or when
    # the caller's own fields asked (``user_close``), Connection: close.  ``body`` (bytes or None) is
    # appended when at most COALESCE_BODY_BYTES, so a small request is one write.  ValueError for a
    # non-token method or a bad request target; TypeError when either is None.
    cdef bytes request_head(self, str method, str target, object fields, int framing,
                            long long content_length, bint close, object body, bint upgrade)
    cdef int _put(self, const char* data, Py_ssize_t n) except -1
    cdef int _put_field(self, object name, object value) except -1
    # The framing field line for a writer BODY_* value (both roles): ``Content-Length: n`` for
    # BODY_LENGTH, ``Transfer-Encoding: chunked`` for BODY_CHUNKED, nothing otherwise.
    cdef int _put_framing(self, int framing, long long content_length) except -1
