# cython: language_level=3
"""Contract of the chunked transfer coding (RFC 9112 §7.1): an incremental strict decoder and
an encoder, shared by server (request bodies in, streamed responses out) and client."""


cdef class ChunkedDecoder:
    """Incremental decoder of one chunked body.

    States: chunk size, chunk extension, size-line LF, chunk data, data CR, data LF, trailer
    section, done (and failed, after a ProtocolError).  Invariant: every byte handed to ``feed`` is
    consumed exactly once (the decoder keeps no copy of undecoded input), so a body split anywhere
    decodes to the same data.  Feeding a decoder that is done or failed raises RuntimeError.
    """
    cdef int _state
    cdef unsigned long long _remaining      # size being read (size line), then data bytes left
    cdef Py_ssize_t _line_bytes             # bytes of the current size line before its CR (bounded)
    cdef Py_ssize_t _trailer_bytes          # bytes of trailer field lines seen (bounded)
    cdef Py_ssize_t max_trailer_bytes
    cdef Py_ssize_t _trailer_from           # index in the current input where trailer bytes start
    cdef int _error                         # why the decoder failed: a grammar ParseError code
    cdef bytearray _trailer_raw             # the trailer field lines' bytes, parsed when done
    cdef readonly bint done                 # the last chunk and the trailer section were read
    cdef readonly list trailers             # [(bytes lower-case name, bytes value)] once done, else None

    # Decode from data[0:length].  Appends each piece of chunk data as a ``bytes`` to ``out``.
    # Returns how many input bytes were consumed: all of them, unless the body ended inside the
    # input, then the index just past the final CRLF (the next message starts there).
    # Raises ProtocolError(400) on any malformed input, ProtocolError(431) when the trailer section
    # passes max_trailer_bytes; RuntimeError when called after done or after a ProtocolError.
    cdef Py_ssize_t feed(self, const unsigned char* data, Py_ssize_t length, list out) except -1
    cdef Py_ssize_t _scan(self, const unsigned char* data, Py_ssize_t i, Py_ssize_t length) noexcept
    cdef int _finish(self) except -1


# "<hex size>\r\n" for a chunk of n > 0 bytes (ValueError otherwise).  cpdef:
# ``framing.BodyWriter`` (both roles) calls it from C for large chunks; tests call it too.
cpdef bytes chunk_header(Py_ssize_t n)
# The whole chunk: header, data, CRLF in one allocation (b"" for empty data: an empty chunk would
# end the body).  ``framing.BodyWriter`` uses it for chunks up to COALESCE_BODY_BYTES.
cpdef bytes encode_chunk(bytes data)
