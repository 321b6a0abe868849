# cython: language_level=3
"""Contract of the response writer: one response at a time over the connection's outbox.

``respond`` (a whole response: head and small body in one write), ``start``/``write``/``end`` (a
streamed body, framed by a ``BodyWriter``; ``end`` may carry a trailer section), ``switching`` (a
``101 Switching Protocols`` head, RFC 9110 §15.2.2).  The writer owns the response's state; persistence is not its to decide: the
server role passes the ``Connection`` verdict in (a serialise ``CONN_*`` value), and the writer
reports back, in ``close_after``, what the response itself demands — the handler's own
``Connection: close``, a body delimited by closing (HTTP/1.0 stream), a body that ended short of
its Content-Length.

States: R_NONE -> R_DONE (respond, switching) or R_NONE -> R_STREAMING -> R_DONE; ``reset`` for
the next request.
"""
from cyserve._core.http.framing cimport BodyWriter
from cyserve._core.http.serialise cimport HeadWriter
from cyserve._core.io.outbox cimport Outbox

cdef enum:
    R_NONE = 0
    R_STREAMING = 1
    R_DONE = 2


cdef class ResponseWriter:
    cdef Outbox _out
    cdef HeadWriter _heads
    cdef BodyWriter _body
    cdef readonly int state
    cdef readonly int status          # of the response started or sent (0 before)
    cdef readonly long long sent      # content bytes handed to the outbox (no head, no framing)
    cdef bint _silent                 # the streamed body is not sent (HEAD, 204, 304)
    cdef bint _http10                 # the request was HTTP/1.0
    cdef bint _head_request           # the request was HEAD: heads only
    cdef readonly bint close_after    # the response demands that the connection closes after it

    cdef inline int reset(self, bint http10, bint head_request) except -1:
        self.state = R_NONE
        self._http10 = http10
        self._head_request = head_request
        self.close_after = False
        self.status = 0
        self.sent = 0
        return 0
    cdef int respond(self, int status, object fields, object body, object content_type,
                     int conn) except -1
    cdef int start(self, int status, object fields, object content_type,
                   long long content_length, int conn) except -1
    # A piece of a streamed body; returns drain() for the caller to await.
    cdef object write(self, object data)
    # The end of the streamed body; ``trailers`` None, or ``(name, value)`` pairs for its trailer
    # section (``BodyWriter.finish_trailers`` says when they go out).  ValueError for trailers
    # refused there leaves the response streaming, as before the call.
    cdef int end(self, object trailers) except -1
    cdef int switching(self, str protocol, object fields) except -1
    # A streamed response is in progress whose body goes out chunked (HTTP/1.1, no declared
    # length, a status and method with content): ``end`` would send its trailers.
    cdef bint trailers_allowed(self) noexcept


# ``server_name`` None: no Server field; ``date_header`` false: no Date field.
cdef ResponseWriter response_writer(Outbox out, object server_name, bint date_header)
