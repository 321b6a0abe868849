# cython: language_level=3
"""Contract of the PROXY protocol role: HAProxy's connection header (v1 text, v2 binary), read
before HTTP on a connection from a trusted proxy.

A load balancer that terminates TCP (HAProxy, an AWS NLB, Traefik...) hides the client's address:
the socket's peer is the balancer.  With the PROXY protocol it writes one header first, naming
the client it saw.  ``ProxyRole`` is the stream's first role when ``ServerState.proxy_protocol``
is on:

- on accept it asks ``ServerState.proxy_trusted(host)`` once; an untrusted peer goes straight to
  the next role (its PROXY line, if it sends one, is then just a bad request);
- from a trusted peer the header is required (the spec: a receiver must not guess whether it is
  there): a malformed header, or one not complete within the deadline, closes the connection
  without an answer;
- the header's source address becomes ``stream.peername`` (the socket's stays in
  ``socket_peername``); v1 ``UNKNOWN``, the v2 ``LOCAL`` command and the v2 UNSPEC and UNIX
  families keep the socket's peer; v2 TLVs are skipped;
- then ``stream.switch(next role)``: the bytes after the header are that role's first input.

States: waiting (made, header incomplete) -> switched (the next role owns the stream) or closed.
"""
from cyserve._core.io.stream cimport RoleHooks, Stream

cdef enum:
    V1_MAX_BYTES = 107          # the v1 line, CRLF included (the spec's worst case)
    V2_HEADER_BYTES = 16        # signature (12), version/command, family, length (2)
    K_PROXY_HEADER = 1          # the input watch's kind while the header is awaited


cdef class ProxyRole:
    cdef readonly Stream stream
    cdef object _next                 # the role that runs after the header
    cdef const RoleHooks* _next_hooks
    cdef object _trusted              # trusted(host: str) -> bool
    cdef double _timeout_s            # the whole header must arrive within this (0: no limit)
    cdef Py_ssize_t _max_bytes        # a longer v2 header is refused (it must fit the buffer)
    cdef readonly int version         # 1 or 2 once a header was read, else 0

    cdef int _read(self) except -1
    cdef int _fail(self, str why) except -1
    cdef int _hand_over(self) except -1


# Attach a ``ProxyRole`` to ``stream`` (not yet connected) that hands it to ``next_role`` (with
# ``next_hooks``) once the header is read or the peer is untrusted.
cdef ProxyRole proxy_first(Stream stream, object trusted, double timeout_s, Py_ssize_t max_bytes,
                           object next_role, const RoleHooks* next_hooks)

# Parse a PROXY header at the start of ``data[:n]``: None while it is incomplete, else
# ``(consumed, version, peer)`` with ``peer`` None to keep the socket's.  ValueError when the bytes
# are not a valid header (``max_bytes`` bounds a v2 header).
cdef object parse_header(const unsigned char* data, Py_ssize_t n, Py_ssize_t max_bytes)
