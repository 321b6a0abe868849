# cython: language_level=3
"""Contract of the HTTP/1.1 server connection (DESIGN steps 1-7).

``HTTPServerCore`` is one connection's state machine over the shared ``state.ServerState``; the
loop sees it through a tiny Python subclass that mixes in ``asyncio.BufferedProtocol`` (uvloop duck-types ``get_buffer``, stdlib asyncio checks isinstance).
"""
from cyserve._core.http.body cimport BodyStream
from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.http.chunked cimport ChunkedDecoder
from cyserve._core.http.parser cimport Head, HeadScanner
from cyserve._core.sender cimport Sender
from cyserve._core.state cimport ServerState
from cyserve._core.timer cimport Deadline


cdef class HTTPServerCore(Sender):
    """The request side; the response side (``Sender``) is its base."""
    cdef ServerState _state
    cdef readonly object peername
    cdef readonly object sockname
    cdef ReceiveBuffer _buf
    cdef HeadScanner _scanner
    cdef Deadline _deadline
    # request side: phase S_*, the current request, its body framing
    cdef int _phase
    cdef bint _handler_running
    cdef bint _discarding            # the handler is done; the rest of its body is dropped
    cdef bint _peer_eof
    cdef bint _closed                # connection_lost ran
    cdef bint _continue_owed         # a 100 Continue is due when the handler first reads
    cdef Head _head
    cdef BodyStream _body
    cdef ChunkedDecoder _decoder
    cdef long long _body_remaining   # FRAMING_LENGTH: bytes still to arrive
    cdef long long _body_received
    cdef Py_ssize_t _requests
    cdef object _task
    # read flow control
    cdef bint _read_paused
    cdef bint _paused_for_body
    cdef bint _paused_for_pipeline
    cdef object _disconnect_waiter

    cdef int _process(self) except -1
    cdef int _start_request(self, Head head) except -1
    cdef int _feed_body(self) except -1
    cdef int _body_failed(self, object exc) except -1
    cdef int _dispatch(self, Head head, object body) except -1
    cdef int _handler_done(self) except -1
    cdef int _handler_failed(self, object exc) except -1
    cdef int _finish_request(self) except -1
    cdef int _next_request(self) except -1
    cdef int _reject(self, object exc) except -1
    cdef _respond_status(self, int status, str detail=*)
    cdef int _update_reading(self) except -1
