# cython: language_level=3
"""Contract of the writing half of a client connection (base of ``client.HTTPClientCore``).

The mirror of the server's ``sender.Sender``: ``RequestSender`` owns everything on the way out —
the request head (serialised by ``reqhead.request_head``), the framing of a body sent in pieces
(Content-Length counted down, or chunks with ``chunk_header``), and write backpressure
(``pause_writing``/``resume_writing`` drive ``drain()``, bounded by the write deadline).

The reading half (``client.HTTPClientCore``) derives from it, sets ``transport``, ``_loop``,
``_exc``, ``_closing`` and ``_keep_alive`` as the connection's life goes, and implements the
three hooks below; this half only calls them.  Request states: ``_req_open`` is true from a head
that promised a body until ``end_body``/``stop_body`` (or a failure).
"""
from cyserve._core.http.body cimport BodyOwner
from cyserve._core.http.serialise cimport HeadWriter


cdef class RequestSender(BodyOwner):
    cdef readonly object transport
    cdef object _loop
    cdef HeadWriter _writer                   # scratch block reused for every request head
    # facts the connection keeps (read here, set by the reading half)
    cdef object _exc                          # why the connection failed, else None
    cdef bint _closing
    cdef bint _keep_alive                     # the connection may carry another exchange
    # the request being sent
    cdef bint _req_open                       # request body still being sent
    cdef int _req_framing                     # BODY_LENGTH / BODY_CHUNKED / BODY_NONE
    cdef long long _req_remaining             # BODY_LENGTH: bytes still promised
    cdef bint _req_close                      # we asked for Connection: close
    # write backpressure
    cdef bint _write_paused
    cdef object _drain_waiter
    cdef double _write_s                      # how long a paused transport may stay paused
    cdef double _write_deadline               # monotonic seconds, 0 = none (the connection's timer)

    # Check the framing arguments, serialise the head (ValueError before any state changes),
    # then record the request's framing in ``_req_*``.
    cdef bytes _request_head(self, str method, str target, object fields,
                             long long content_length, bint chunked, bytes body, bint close)
    # Write the head (and ``body``, coalesced when small); opens the body when one is due.
    cdef int _send_request(self, bytes head, bytes body) except -1
    cdef int _send_framed(self, bytes data) except -1
    # Resolve a pending drain() waiter (writing resumed, the connection failed or woke up).
    cdef int _wake_drain(self) except -1

    # Hooks the reading half implements.
    # Final failure: store ``exc``, wake every waiter, abort the transport.
    cdef int _fail(self, object exc) except -1
    # (Re)arm the connection's timer for its earliest deadline (``_write_deadline`` among them).
    cdef int _arm(self) except -1
    # The request body ended: in full (``end_body``) or given up after an early final response
    # (``stop_body``, ``complete`` false, ``_keep_alive`` already cleared).
    cdef int _request_done(self, bint complete) except -1
