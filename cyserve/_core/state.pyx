# cython: language_level=3
"""State shared by every connection of one listening server (see state.pxd)."""
cimport cython

from cyserve._core.http.parser cimport ParserLimits


@cython.final
cdef class ServerState:
    """What every connection of one server shares (see state.pxd)."""

    def __cinit__(self, entry, config, loop=None):
        limits = config.limits
        timeouts = config.timeouts
        marks = config.water_marks
        self.entry = entry
        self.loop = loop
        self.connections = set()
        self.shutting_down = False
        self.limits = ParserLimits.from_config(limits)
        self.max_body_bytes = limits.max_body_bytes
        self.max_trailer_bytes = limits.max_trailer_bytes
        self.max_pipeline_bytes = limits.max_pipeline_bytes
        self.max_keepalive_requests = limits.max_keepalive_requests
        self.first_request_s = timeouts.first_request_s
        self.head_s = timeouts.head_s
        self.body_idle_s = timeouts.body_idle_s
        self.keepalive_s = timeouts.keepalive_s
        self.write_high = marks.write_high
        self.write_low = marks.write_low
        self.body_high = marks.body_high
        self.body_low = marks.body_low
        self.recv_initial = min(config.receive_buffer_bytes, limits.max_head_bytes + 2 * MIN_READ_BYTES)
        # The buffer must hold a whole head or a full pipeline window, plus one read.
        self.recv_max = max(limits.max_head_bytes, limits.max_pipeline_bytes) + 2 * MIN_READ_BYTES
        self.server_name = config.server_header
        self._idle = None

    def begin_shutdown(self) -> None:
        """Stop keep-alive everywhere: idle connections close now, busy ones after their response."""
        self.shutting_down = True
        for conn in list(self.connections):
            conn.begin_shutdown()

    async def wait_closed(self) -> None:
        """Return once every connection is gone."""
        if not self.connections:
            return
        self._idle = self.loop.create_future()
        await self._idle

    def abort_all(self) -> None:
        """Last step of a shutdown whose grace period ran out: cancel handlers, drop connections."""
        for conn in list(self.connections):
            conn.abort()

    cdef int forget(self, object conn) except -1:
        self.connections.discard(conn)
        if self._idle is not None and not self.connections and not self._idle.done():
            self._idle.set_result(None)
        return 0
