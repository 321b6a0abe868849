# cython: language_level=3
"""Contract of permessage-deflate (RFC 7692): negotiation and the per-connection codecs.

Negotiation (Python functions in deflate.pyx, run once per handshake): parse a
``Sec-WebSocket-Extensions`` value (RFC 7692 §5, RFC 6455 §9.1); the server accepts the first
offer it can honour and answers with the parameters it chose; the client makes an offer and checks
the server's answer.  ``server_no_context_takeover``, ``client_no_context_takeover``,
``server_max_window_bits`` and ``client_max_window_bits`` are honoured both ways.  zlib cannot
compress raw deflate with a window of 8 bits (it silently uses 9): a side that would have to
compress with 8 bits uses 9 only where the peer's inflater accepts it, otherwise declines the offer.

``Inflater`` (receive direction) inflates one message at a time, fed fragment by fragment, and is
**bounded**: it never produces (nor allocates for) more than the limit it is given, so a deflate
bomb costs at most the message limit.  ``Deflater`` (send direction) compresses one whole message.
Both keep their LZ77 window between messages unless the negotiated no-context-takeover parameter
for that direction says otherwise.
"""
cimport cython


@cython.final
cdef class Inflater:
    cdef object _z                    # zlib decompressobj(-wbits); None until a message needs it, and
                                      # dropped at each message's end without takeover
    cdef int _wbits
    cdef bint _no_takeover
    cdef bint _in_message
    # A piece of the current message's compressed payload: its inflated bytes, at most
    # ``max_out + 1`` of them (more than ``max_out`` means the message passed its limit: the caller
    # closes with 1009; nothing further is inflated).  Raises ``ValueError`` on corrupt data.
    # ``cpdef`` (here and below) so tests and pure-Python callers use the same names; a direct C
    # call from Cython (the classes are final).
    cpdef bytes feed(self, object data, Py_ssize_t max_out)
    # The message's FIN arrived: inflate the ``00 00 ff ff`` tail RFC 7692 §7.2.2 removed (same
    # bound and errors as ``feed``); then reset the window if the context is not taken over.
    cpdef bytes end_message(self, Py_ssize_t max_out)


@cython.final
cdef class Deflater:
    cdef object _z                    # zlib compressobj(level, DEFLATED, -wbits, memlevel); None until
                                      # a message needs it, and dropped after each without takeover
    cdef int _wbits, _level, _memlevel
    cdef bint _no_takeover
    # One whole message compressed for a frame with RSV1 set: flushed with Z_SYNC_FLUSH and the
    # trailing ``00 00 ff ff`` removed (RFC 7692 §7.2.1); an empty message is ``b"\x00"``.
    cpdef bytes compress(self, object data)
