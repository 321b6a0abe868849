# cython: language_level=3
"""What the connections of one server or one client share (see state.pxd)."""
cimport cython

from cyserve._core.http.scanner cimport ParserLimits


def trust_loopback(str host) -> bool:
    """The default ``proxy_trusted``: loopback addresses and Unix socket peers (the default of
    uvicorn's ``--forwarded-allow-ips``, 127.0.0.1, widened to the whole loopback net and ::1)."""
    return (host == "unix:" or host.startswith("127.") or host == "::1"
            or host.startswith("::ffff:127."))


@cython.final
cdef class ServerState:
    """``ServerState(entry, config, loop)``: ``config`` is a ``cyserve.config.ServerConfig``."""

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
        self.max_linger_bytes = limits.max_linger_bytes
        self.first_request_s = timeouts.first_request_s
        self.head_s = timeouts.head_s
        self.body_idle_s = timeouts.body_idle_s
        self.keepalive_s = timeouts.keepalive_s
        self.write_s = timeouts.write_s
        self.handler_s = timeouts.handler_s
        self.linger_s = timeouts.linger_s
        self.write_high = marks.write_high
        self.write_low = marks.write_low
        self.body_high = marks.body_high
        self.body_low = marks.body_low
        self.recv_initial = min(config.receive_buffer_bytes, limits.max_head_bytes + 2 * MIN_READ_BYTES)
        # The buffer must hold a whole head or a full pipeline window, plus one read.
        self.recv_max = max(limits.max_head_bytes, limits.max_pipeline_bytes) + 2 * MIN_READ_BYTES
        self.server_name = config.server_header
        self.date_header = config.date_header
        self._idle = None
        self.observer = None
        self.requests_total = 0
        self.requests_active = 0
        self.limit_concurrency = config.limit_concurrency or 0
        self.limit_connections_per_ip = config.limit_connections_per_ip or 0
        self._per_ip = {}
        self._counted = {}
        self.proxy_protocol = config.proxy_protocol
        self.proxy_trusted = trust_loopback

    cdef int admit(self, object stream, object host) except -1:
        cdef object count = self._per_ip.get(host)
        if count is None:
            self._per_ip[host] = 1
        elif <Py_ssize_t>count >= self.limit_connections_per_ip:
            return 0
        else:
            self._per_ip[host] = <Py_ssize_t>count + 1
        self._counted[stream] = host
        return 1

    def connections_from(self, host) -> int:
        """Open connections counted under ``host`` (only while limit_connections_per_ip is on)."""
        return self._per_ip.get(host, 0)

    # The registry the streams report to (``Stream`` calls these; no import of the stream here).
    def join(self, stream) -> None:
        self.connections.add(stream)

    def leave(self, stream) -> None:
        self.connections.discard(stream)
        if self._counted:
            host = self._counted.pop(stream, None)
            if host is not None:
                count = self._per_ip[host] - 1
                if count:
                    self._per_ip[host] = count
                else:
                    del self._per_ip[host]   # the table holds only hosts with open connections
        if self._idle is not None and not self.connections and not self._idle.done():
            self._idle.set_result(None)

    def begin_shutdown(self) -> None:
        """Stop keep-alive everywhere: idle connections close now, busy ones after their response."""
        self.shutting_down = True
        for stream in list(self.connections):
            stream.begin_shutdown()

    async def wait_closed(self) -> None:
        """Return once every connection is gone."""
        if not self.connections:
            return
        self._idle = self.loop.create_future()
        await self._idle

    def abort_all(self) -> None:
        """Last step of a shutdown whose grace period ran out: cancel handlers, drop connections."""
        for stream in list(self.connections):
            stream.abort_now()


@cython.final
cdef class ClientState:
    """``ClientState(loop, limits)``: ``limits`` is a ``cyserve.config.ClientLimits``."""

    def __cinit__(self, loop, limits):
        self.loop = loop
        # A status line has no 414 rule; the request-line limit only bounds the scanner's first
        # line in request mode, so it just has to fit inside the head limit.
        self.limits = ParserLimits(min(8192, limits.max_head_bytes), limits.max_head_bytes,
                                   limits.max_header_count)
        self.max_trailer_bytes = limits.max_trailer_bytes
        self.max_interim_responses = limits.max_interim_responses
        self.read_high = limits.read_high
        self.read_low = limits.read_low
        self.write_high = limits.write_high
        self.write_low = limits.write_low
        self.keepalive_s = limits.keepalive_expiry_s
        self.read_chunk = CLIENT_READ_BYTES
        self.recv_initial = CLIENT_READ_BYTES
        # A whole head must fit, plus one read of body behind it.
        self.recv_max = limits.max_head_bytes + 2 * CLIENT_READ_BYTES
