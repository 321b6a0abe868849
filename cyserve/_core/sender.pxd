# cython: language_level=3
"""Contract of the writing half of a server connection.

``Sender`` owns everything on the way out: the response state, framing of streamed bodies,
coalescing of the writes made during one read pass, and write backpressure (DESIGN principle 5:
``pause_writing``/``resume_writing`` drive ``drain()``, which creates no future unless paused).
The request side (``protocol.HTTPServerCore``) derives from it and sets the facts about the
request being answered (``_keep_alive``, ``_http10``, ``_head_request``, ``_processing``).
"""
from cyserve._core.http.body cimport BodyOwner
from cyserve._core.http.serialise cimport HeadWriter

cdef class Ready:
    """An awaitable that is already done: what ``drain()`` returns while writing is not paused,
    so the common case creates no future."""


# Response states: R_NONE -> (R_STREAMING ->) R_DONE, reset to R_NONE for the next request.
cdef enum:
    R_NONE = 0
    R_STREAMING = 1
    R_DONE = 2


cdef class Sender(BodyOwner):
    cdef readonly object transport
    cdef HeadWriter _writer
    cdef object _loop
    # facts about the request being answered (set by the request side)
    cdef bint _keep_alive
    cdef bint _http10
    cdef bint _head_request
    cdef bint _processing            # inside a read pass: writes are coalesced
    cdef bint _closing               # transport.close() was called or the peer is gone
    # the response
    cdef int _resp_state
    cdef int _resp_framing           # BODY_* of the response being streamed
    cdef long long _resp_remaining   # BODY_LENGTH streams: bytes still promised
    cdef bint _resp_silent           # HEAD or no-body status: body bytes are not sent
    # writes queued during one read pass, flushed as one transport.write
    cdef list _out
    cdef Py_ssize_t _out_bytes
    # write backpressure
    cdef bint _write_paused
    cdef object _drain_waiter

    cdef int _send(self, bytes data) except -1
    cdef int _flush(self) except -1
    cdef int _check_writable(self) except -1
    # Connection persistence for the response about to be written (a writer CONN_* value);
    # the request side overrides it with what it knows about unread bodies and shutdown.
    cdef int _conn_mode(self) except -1
    # Flush what is queued and close the transport (overridden to also stop timers).
    cdef int _close(self) except -1
    # The connection is gone: drop queued output and wake a drain() waiter with ``exc``.
    cdef int _writes_lost(self, object exc) except -1
