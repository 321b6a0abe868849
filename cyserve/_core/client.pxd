# cython: language_level=3
"""Contract of the HTTP/1.1 client connection (the client role of the one codec, DESIGN §3).

The same pieces as the server, in the other role, one module each: requests are serialised by
``reqhead.request_head`` (the writer's field validation: no CR/LF/NUL, token names) and sent by
the writing half ``reqsender.RequestSender``; responses are read by the reading half
``respreader.ResponseReader`` (``HeadScanner`` in response mode, ``parse_response``,
``ChunkedDecoder``, a ``BodyStream`` whose reads drive read pause/resume).  ``HTTPClientCore``
derives from both halves (RequestSender <- ResponseReader <- HTTPClientCore) and owns the
exchange: starting it, ending it (back to the pool or closed), failure and the deadlines.

``clientstate.ClientState`` is shared by every connection of one ``Client`` (re-exported here).
The loop sees a connection through a tiny Python subclass mixing in ``asyncio.BufferedProtocol``
(see DESIGN, "Loop gotcha").

One exchange (request + response) at a time; no pipelining.  Results travel through plain
wake-up futures resolved with ``None`` and the error stored on the connection, so an exchange that
nobody awaits any more never leaves a "Future exception was never retrieved" behind.
"""
from cyserve._core.respreader cimport ResponseReader


cdef class HTTPClientCore(ResponseReader):
    """The exchange and the connection's life; the two halves are its bases."""
    cdef readonly object origin               # the pool key this connection serves
    cdef public object listener               # .connection_released(conn) / .connection_closed(conn)
    cdef readonly Py_ssize_t exchanges        # exchanges started on this connection
    cdef bint _peer_eof
    cdef readonly bint closed                 # connection_lost ran
    # deadlines (monotonic seconds, 0 = none) behind one lazy timer; the read and write
    # deadlines are the halves' fields (``_read_deadline``, ``_write_deadline``)
    cdef double _total_deadline, _idle_deadline
    cdef readonly double idle_since           # when the last exchange ended (monotonic)
    cdef object _timer
    cdef double _timer_at

    cdef _closed_error(self, object exc)
    cdef _cancel_timer(self)
