# cython: language_level=3
"""Contract of the ASGI adapter's per-request path (``cyserve.asgi`` is the rest): the HTTP scope
built from a parsed head in one C pass, and ``HTTPExchange``, the object whose bound
``receive``/``send`` an ASGI app gets for one HTTP request.

``ASGIEntry`` is one served ASGI app's entry: what is per app (the app, ``root_path``, the
lifespan ``state``, fields added to every response, the Python hooks for what is rare) made
once; ``handle(conn, head, body)`` is the core's one call per request.  It builds the scope
(``http_scope``), makes an ``HTTPExchange`` and awaits the app; an upgrade request, and a
request whose proxy headers must be read first, go to the Python hooks instead.

``HTTPExchange`` owns the response's state (``phase``); the core owns the connection's.  States,
one way only (h11's rule)::

    IDLE --start--> STARTED --body, more_body false--> DONE          one conn.respond: one write
                       |--body, more_body true; pathsend--> STREAMING --last body--> DONE
                       |                                       \\--(trailers)--> TRAILERS --> DONE
    any --a broken Content-Length promise--> FAILED

The request body's states: bytes not yet delivered -> None (delivered); or a stream being read
-> None.  ``failure`` is set once: the body's ``ProtocolError`` (the core answers it), or the
app's broken promise (the connection closes).

Helpers for the rest of the adapter: ``scope_headers``, ``target_bytes``, ``declared_length``,
``offers_trailers``, ``end_with_trailers`` (a chunked response's trailer section, RFC 9112
§7.1.2).  Nothing here keeps a reference past a request but the exchange itself.
"""
from cyserve._core.http.head cimport Head
from cyserve._core.http.server cimport ServerRole

cdef enum:
    X_IDLE = 0
    X_STARTED = 1
    X_STREAMING = 2
    X_TRAILERS = 3
    X_DONE = 4
    X_FAILED = 5


cdef class ASGIEntry:
    cdef readonly object app
    cdef readonly str root_path
    cdef bytes _raw_root              # prepended to raw_path; b"" when paths already carry it
    cdef bint _prepend                # root_path is prepended to path (a proxy stripped it)
    cdef readonly dict state          # the lifespan state; each scope gets a shallow copy
    cdef readonly object extra        # fields added to every response (list) or None
    cdef object _upgrade              # async (conn, head, body): requests that ask to upgrade
    cdef object _before               # (conn, head) -> bool: proxy headers; None for none
    cdef object _send_file            # async (exchange, path): http.response.pathsend
    cdef dict _template               # every key of an http scope, fixed values in place

    cpdef dict http_scope(self, object conn, Head head)


cdef class HTTPExchange:
    cdef object _conn                 # the ServerRole, or a middleware's wrapper of it
    cdef ASGIEntry _entry
    cdef object _body                 # bytes not yet delivered, a reader, or None
    cdef readonly int phase
    cdef readonly int status
    cdef object _fields
    cdef readonly long long length    # the Content-Length the app declared, or -1
    cdef long long _left              # bytes still owed while streaming, or -1
    cdef bint _trailers               # the app will send http.response.trailers
    cdef readonly bint head_request
    cdef bint _offered_trailers       # the client sent TE: trailers
    cdef object _extra                # fields added unless the app set their name, or None
    cdef list _trailer_fields
    cdef readonly object failure
    cdef object _waiter               # receive()'s future while it waits for the end
    cdef object _on_start             # (status) -> None, or None

    # ``send`` does its work when called and returns the outbox's shared ``READY`` unless
    # something may wait (a streamed piece while writing is paused, a pathsend file): the
    # common response makes no coroutine.
    cdef object _send(self, dict message)
    cdef int _started(self, dict message) except -1
    cdef int _respond(self, object body) except -1
    cdef int _start(self, long long length) except -1
    cdef object _write(self, object body, bint more)     # READY, or the wait for a drain
    cdef int _ended(self, bint more) except -1           # after a piece: end the body if last
    cdef int _add_trailers(self, dict message) except -1
    cdef int _broken(self, str why) except -1
    cdef object _unexpected(self, object kind)
    cdef object _gone(self, object exc)
    cdef int _wake(self) except -1
    cdef int _finish(self) except -1
    cdef int _failed(self, object exc) except -1


cdef HTTPExchange new_exchange(ASGIEntry entry, object conn, object body, bint head_request,
                               bint offered_trailers, object extra, object on_start)

cpdef list scope_headers(Head head)
cpdef tuple target_bytes(Head head)
cpdef long long declared_length(object fields) except -2
cpdef bint offers_trailers(Head head) except -1
cpdef int end_with_trailers(ServerRole conn, object fields) except -1
