# cython: language_level=3
"""Contract of the reading half of a client connection (base of ``client.HTTPClientCore``).

``ResponseReader`` cuts response heads out of the receive buffer (``HeadScanner`` in response
mode, ``parse_response``; interim 1xx skipped), frames the body (Content-Length, chunked through
``ChunkedDecoder``, or until close) into a ``BodyStream`` or, when it is all here already, into
``bytes``, and pauses reading while the stream's reader is behind.  It derives from the writing
half (``reqsender.RequestSender``) so one object is the loop's protocol; the connection
(``client.HTTPClientCore``) starts exchanges, ends them and implements the two hooks below.

Ownership: ``_buf`` is this connection's; ``HeadScanner.find_end`` reads its bytes in place, and
every head or body piece handed up is a ``bytes`` copy taken before the buffer is consumed.
"""
from cyserve._core.http.body cimport BodyStream
from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.http.chunked cimport ChunkedDecoder
from cyserve._core.clientstate cimport ClientState
from cyserve._core.http.parser cimport Head, HeadScanner
from cyserve._core.reqsender cimport RequestSender

# Response phases (``_resp_phase``); their meaning and the exchange's invariants: client.pyx.
cdef enum:
    P_IDLE = 0
    P_HEAD = 1
    P_BODY = 2
    P_DONE = 3
    P_DEAD = 4


cdef class ResponseReader(RequestSender):
    cdef ClientState _state
    cdef ReceiveBuffer _buf
    cdef HeadScanner _scanner
    cdef int _resp_phase                      # P_*
    cdef bint _head_request                   # HEAD or CONNECT: the response has no body
    cdef bint _connect                        # a CONNECT: a 2xx answer opens a tunnel
    cdef Head _head
    cdef object _resp_body                    # bytes (complete) or BodyStream
    cdef BodyStream _stream
    cdef ChunkedDecoder _decoder
    cdef long long _body_remaining            # FRAMING_LENGTH: bytes still to arrive
    cdef readonly long long response_bytes    # bytes received during the current exchange
    cdef object _head_waiter                  # start()'s future: (head, body) or None
    cdef bint _read_paused                    # the stream's reader is behind: not reading
    cdef double _read_s                       # silence allowed while response bytes are due
    cdef double _read_deadline                # monotonic seconds, 0 = none (the connection's timer)

    # Parse what the buffer holds as far as the phase allows (one read's worth).
    cdef int _process(self) except -1
    cdef int _on_head(self, Head head) except -1
    # Buffered bytes into the body stream: 1 once the body is complete, else 0 (also on failure).
    cdef int _feed_body(self) except -1
    cdef int _body_done(self) except -1
    # Resolve start()'s future with (head, body) and let a waiting uploader look again.
    cdef int _wake_head(self) except -1
    # Apply ``_read_paused`` to the transport (and restart the read deadline on resume).
    cdef int _update_reading(self) except -1

    # Hooks the connection implements.
    # The response is complete (P_DONE): end the exchange if the request is sent too.
    cdef int _maybe_release(self) except -1
    # Close (or abort) the transport once and tell the listener.
    cdef int _shut(self, bint abort) except -1
