# cython: language_level=3
"""Contract of message body framing, one implementation for both roles (RFC 9112 §6).

``BodyReader`` takes a body off a receive buffer: Content-Length bytes counted down, chunked
through ``ChunkedDecoder``, or everything until the connection closes (responses only).  The
server reads request bodies with it, the client response bodies.  Bytes go to a ``BodyStream``,
or nowhere while a body nobody reads is drained.

``BodyWriter`` puts a body on an outbox as its head promised: Content-Length (counted; more is a
ValueError, less is reported by ``finish`` so the connection closes, RFC 9112 §6.3), chunked, or
as is (close-delimited).  The server writes streamed responses with it, the client request bodies.
A chunked body may end with a trailer section (``finish_trailers``, RFC 9112 §7.1.2); the fields
in it are checked as head fields are (RFC 9110 §5.5) and against the fields that may not be
trailers (§6.5.1).
"""
from cyserve._core.http.body cimport BodyStream, first_read_fn
from cyserve._core.http.chunked cimport ChunkedDecoder
from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.io.outbox cimport Outbox
from cyserve._core.io.stream cimport Stream


cdef class BodyReader:
    cdef int framing                  # FRAMING_LENGTH, FRAMING_CHUNKED or FRAMING_CLOSE
    cdef readonly long long remaining # FRAMING_LENGTH: bytes still to arrive
    cdef readonly long long received  # body bytes taken so far (decoded for chunked)
    cdef long long _limit             # more decoded bytes than this: ProtocolError 413; -1: none
    cdef ChunkedDecoder _decoder
    cdef readonly bint done
    cdef BodyStream sink              # where the bytes go; None drops them (nobody reads them)

    # Move the body's bytes out of ``buf`` into ``sink``; 1 once the body is complete, else 0.
    # ProtocolError on malformed chunking or past the limit (413).
    cdef int feed(self, ReceiveBuffer buf) except -1


cdef class BodyWriter:
    cdef Outbox _out
    cdef int framing                  # a serialise BODY_* value
    cdef readonly long long remaining # BODY_LENGTH: bytes still promised
    cdef bint _silent                 # HEAD, or a status without content: nothing is sent

    cdef int start(self, int framing, long long content_length, bint silent) except -1
    # ValueError when the piece passes a declared Content-Length.
    cdef int write(self, bytes data) except -1
    # The end of the body: the last chunk for chunked.  Returns 1 when a declared length was not
    # reached (the peer would wait for the rest: the connection must close), else 0.
    cdef int finish(self) except -1
    # The end of the body with ``fields`` (``(name, value)`` pairs, str or bytes) as its trailer
    # section: for a chunked body that is sent, the last chunk, the field lines and the empty line
    # in one write (RFC 9112 §7.1.2).  ValueError, before anything is written, for a field that is
    # not a token name with a field-value (RFC 9110 §5.5), for one that may not be a trailer (RFC
    # 9110 §6.5.1: framing, routing, controls, authentication, cookies, Content-* but
    # Content-Digest), and for a Content-Length body with fields (only the chunked coding has a
    # trailer section).  A body that is not sent (HEAD, 204, 304) or is close-delimited (an
    # HTTP/1.0 peer reads no chunked coding) drops them; no fields is ``finish``.  Returns as
    # ``finish``.
    cdef int finish_trailers(self, object fields) except -1


# ``framing``: FRAMING_LENGTH (``length`` bytes), FRAMING_CHUNKED (``max_trailer_bytes`` bounds
# the trailer) or FRAMING_CLOSE; ``limit`` bounds decoded bytes (-1: none).
cdef BodyReader body_reader(int framing, long long length, long long limit,
                            Py_ssize_t max_trailer_bytes)
cdef BodyWriter body_writer(Outbox out)

# The body after a head (``framing`` not FRAMING_NONE), begun with what ``stream``'s buffer
# already holds: ``bytes`` when the whole body is there (no stream at all), else a ``BodyReader``
# still reading, whose ``sink`` is the ``BodyStream`` (``high``/``low`` water marks, ``owner`` and
# ``on_first_read`` as ``new_body`` takes them) a handler or caller reads.  ProtocolError as
# ``feed``.
cdef object start_body(Stream stream, int framing, long long length, long long limit,
                       Py_ssize_t max_trailer_bytes, Py_ssize_t high, Py_ssize_t low,
                       object owner, first_read_fn on_first_read)


# The bytes of a field name or value given as bytes or a latin-1 str (in place; anything else
# through bytes(), kept alive in ``keep``): what the trailer section and ASGI's header checks read.
cdef const unsigned char* field_bytes(object text, Py_ssize_t* size, list keep) except NULL
