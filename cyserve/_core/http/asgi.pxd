# cython: language_level=3
"""Contract of the ASGI adapter's C helpers: the parts of an ASGI request and response that walk
bytes, done in one C pass each so the adapter (``cyserve.asgi``) touches no header one by one in
Python.

- ``scope_headers``: a parsed head's fields as ASGI wants them, ``[(lower-case name, value)]``
  bytes pairs in received order (ASGI 3 "HTTP Connection Scope": names lower-cased), made from
  the head's offsets with no intermediate ``str``; well-known names are shared bytes objects.
- ``target_bytes``: the request-target's path and query as bytes (``raw_path``, ``query_string``).
- ``declared_length``: the Content-Length an app put among its response fields, so the response
  is framed with it (never silently chunked); -1 when it set none.
- ``offers_trailers``: the request's ``TE`` lists ``trailers`` (RFC 9110 §10.1.4).
- ``end_with_trailers``: end a chunked response with a trailer section (RFC 9112 §7.1.2).

Nothing here keeps a reference past the call; every object returned is new or a shared constant.
"""
from cyserve._core.http.head cimport Head
from cyserve._core.http.server cimport ServerRole

cpdef list scope_headers(Head head)
cpdef tuple target_bytes(Head head)
cpdef long long declared_length(object fields) except -2
cpdef bint offers_trailers(Head head) except -1
cpdef int end_with_trailers(ServerRole conn, object fields) except -1
