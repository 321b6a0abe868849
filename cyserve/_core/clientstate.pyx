# cython: language_level=3
"""``ClientState``: the limits and water marks of one ``Client``, in C fields once."""
cimport cython

from cyserve._core.http.parser cimport ParserLimits


@cython.final
cdef class ClientState:
    """What every connection of one ``Client`` shares (see clientstate.pxd)."""

    def __cinit__(self, loop, *, Py_ssize_t max_head_bytes=65536, Py_ssize_t max_header_count=100,
                  Py_ssize_t max_trailer_bytes=8192, Py_ssize_t read_high=262144,
                  Py_ssize_t read_low=65536, Py_ssize_t write_high=262144,
                  Py_ssize_t write_low=65536, double keepalive_s=5.0,
                  Py_ssize_t read_chunk=65536):
        if not 0 <= read_low <= read_high or not 0 <= write_low <= write_high:
            raise ValueError("water marks need 0 <= low <= high")
        self.loop = loop
        # A status line has no 414 rule; the request-line limit only bounds the scanner's first
        # line in request mode, so it just has to fit inside the head limit.
        self.limits = ParserLimits(min(8192, max_head_bytes), max_head_bytes, max_header_count)
        self.max_trailer_bytes = max_trailer_bytes
        self.read_high = read_high
        self.read_low = read_low
        self.write_high = write_high
        self.write_low = write_low
        self.keepalive_s = keepalive_s
        self.read_chunk = read_chunk
        self.recv_initial = max(16384, read_chunk)
        # A whole head must fit, plus one read of body behind it.
        self.recv_max = max_head_bytes + 2 * read_chunk

