# cython: language_level=3
"""``Stream``: one connection's plumbing under one role at a time (see stream.pxd)."""
cimport cython

from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.io.deadline cimport (
    SLOT_INPUT, SLOT_LINGER, SLOT_OUTPUT, SLOT_ROLE, Deadline, new_deadline,
)
from cyserve._core.io.outbox cimport Outbox
from cyserve._core.io.readgate cimport ReadGate

import asyncio

from cyserve.errors import Disconnected


cdef int _expired(object owner, int slot) except -1:
    """The deadline's callback: the stream handles its own slots, the role the rest."""
    cdef Stream self = <Stream>owner
    cdef Py_ssize_t n
    cdef int kind
    if self.lost:
        return 0
    if slot == SLOT_LINGER:
        self._end_linger()
        return 0
    if slot == SLOT_OUTPUT:
        if not self.outbox.paused:
            return 0
        n = self.outbox.buffered()
        if n < self._write_mark:
            # The peer took some bytes: that is progress, watch the rest.
            self._write_mark = n
            self.deadline.set(SLOT_OUTPUT, self._write_s)
            return 0
        if self.closing or self._hooks == NULL:
            # A closing transport waits for its buffer to drain; a peer that reads nothing
            # would hold it forever.
            self.transport.abort()
            return 0
        self._hooks.expired(self.role, SLOT_OUTPUT, 0)
        return 0
    if self._hooks == NULL:
        return 0
    if slot == SLOT_INPUT:
        kind = self.input_kind
        self.input_kind = 0
        self._input_idle = False
        self._hooks.expired(self.role, SLOT_INPUT, kind)
    else:
        self._hooks.expired(self.role, slot, 0)
    return 0


cdef class Stream:
    """One connection: transport, buffer, outbox, read gate, deadline; the role does the rest."""

    def __cinit__(self, *args, **kwargs):
        self._hooks = NULL
        self.role = None
        self.transport = None

    # ---------------------------------------------------------------- roles
    cdef int attach(self, object role, const RoleHooks* hooks) except -1:
        self.role = role
        self._hooks = hooks
        return 0

    cdef int switch(self, object role, const RoleHooks* hooks) except -1:
        if self.closing:
            raise RuntimeError("cannot switch a closing connection to another protocol")
        # What the old role expected and held back goes with it.
        self.input_kind = 0
        self._input_idle = False
        self.deadline.clear(SLOT_INPUT)
        self.deadline.clear(SLOT_ROLE)
        self.gate.release_all()
        self.role = role
        self._hooks = hooks
        if self.transport is not None:
            hooks.made(role)
        if not self._in_pass and self.buffer.size():
            self.process()
        return 0

    cdef int process(self) except -1:
        cdef object role
        if self._in_pass or self._hooks == NULL or self.lingering:
            return 0
        self._in_pass = True
        self.outbox.cork()
        try:
            role = self.role
            self._hooks.data(role)
            # A role that switched during the pass hands the rest to the next one.
            while (self.role is not role and not self.closing and self._hooks != NULL
                   and self.buffer.size()):
                role = self.role
                self._hooks.data(role)
        finally:
            self._in_pass = False
            self.outbox.uncork()
        return 0

    # ---------------------------------------------------------------- input
    cdef int expect_input(self, int kind, double seconds, bint idle) except -1:
        self.input_kind = kind
        self._input_s = seconds
        self._input_idle = idle and kind != 0 and seconds > 0
        if kind == 0 or seconds <= 0 or self.gate.paused:
            # Nothing expected, or suspended while reading is paused (re-armed on release).
            self.deadline.clear(SLOT_INPUT)
        else:
            self.deadline.set(SLOT_INPUT, seconds)
        return 0

    cdef int hold_reading(self, unsigned int reason) except -1:
        if self.gate.hold(reason):
            # A slow consumer is not a slow peer: no input deadline while we hold back.
            self.deadline.clear(SLOT_INPUT)
        return 0

    cdef int release_reading(self, unsigned int reason) except -1:
        if self.gate.release(reason) and self.input_kind != 0 and self._input_s > 0:
            self.deadline.set(SLOT_INPUT, self._input_s)
        return 0

    # ---------------------------------------------------------------- output
    cdef int set_write_timeout(self, double seconds) except -1:
        self._write_s = seconds
        if seconds <= 0:
            self.deadline.clear(SLOT_OUTPUT)
        return 0

    cdef int set_write_limits(self, Py_ssize_t high, Py_ssize_t low) except -1:
        self._write_high = high
        self._write_low = low
        if self.transport is not None:
            self.transport.set_write_buffer_limits(high=high, low=low)
        return 0

    cdef int set_peer(self, object peer) except -1:
        self.peername = peer
        return 0

    # ---------------------------------------------------------------- closing
    cdef int close(self) except -1:
        if self.closing:
            return 0
        self.closing = True
        self.deadline.clear(SLOT_INPUT)
        self.deadline.clear(SLOT_ROLE)
        self.outbox.close(None)
        if self.transport is not None:
            self.transport.close()
        return 0

    cdef int close_lingering(self, long long max_bytes, double max_s) except -1:
        if self.closing:
            return 0
        if self.peer_eof or max_bytes <= 0 or max_s <= 0 or self.transport is None:
            return self.close()
        self.closing = True
        self.lingering = True
        self._linger_left = max_bytes
        self.deadline.clear(SLOT_INPUT)
        self.deadline.clear(SLOT_ROLE)
        self.deadline.set(SLOT_LINGER, max_s)
        self.outbox.close(None)
        # Half-close (RFC 9112 §9.6): the peer sees the end of our answer now, while whatever
        # it still sends is read and dropped, so its kernel has no cause to reset.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.gate.release_all()
        self.gate.close()
        self._discard()
        return 0

    cdef int abort(self) except -1:
        if self.lost:
            return 0
        self.closing = True
        self.outbox.lost(Disconnected("the connection was aborted"))
        if self.transport is not None:
            self.transport.abort()
        return 0

    cdef int _discard(self) except -1:
        cdef Py_ssize_t n = self.buffer.size()
        self.buffer.consume(n)
        self._linger_left -= n
        if self._linger_left <= 0:
            self._end_linger()
        return 0

    cdef int _wake_disconnect(self) except -1:
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return 0

    cdef int _end_linger(self) except -1:
        if self.lingering:
            self.lingering = False
            self.deadline.clear(SLOT_LINGER)
            if self.transport is not None:
                self.transport.close()
        return 0

    # ---------------------------------------------------------------- the loop's callbacks
    def connection_made(self, transport):
        self.transport = transport
        self.outbox.transport = transport
        self.gate.transport = transport
        self.peername = self.socket_peername = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        transport.set_write_buffer_limits(high=self._write_high, low=self._write_low)
        if self._registry is not None:
            self._registry.join(self)
        if self._hooks != NULL:
            self._hooks.made(self.role)

    def get_buffer(self, Py_ssize_t sizehint):
        if self.buffer.free() < self._read_chunk:
            self.buffer.reserve(self._read_chunk)
        # The buffer itself: its buffer view is the free tail, and it is sliceable for
        # asyncio's TLS transport.  No allocation per read.
        return self.buffer

    def buffer_updated(self, Py_ssize_t nbytes):
        self.buffer.commit(nbytes)
        if self.lingering:
            self._discard()
            return
        if self._input_idle:
            self.deadline.bump(SLOT_INPUT, self._input_s)
        if not self._in_pass:
            self.process()

    def eof_received(self):
        # Most peers hang up this way (FIN, not RST): whoever watches for a disconnect learns of
        # it now, though a role may still finish writing to a peer that only half-closed.
        self.peer_eof = True
        self._wake_disconnect()
        if self.lingering:
            self._end_linger()
            return False
        if self._hooks == NULL or self.closing:
            return False
        return self._hooks.eof(self.role) == 1

    def connection_lost(self, exc):
        cdef const RoleHooks* hooks = self._hooks
        role = self.role
        self.lost = True
        self.closing = True
        self.lingering = False
        self.deadline.cancel()
        self.gate.close()
        if self._registry is not None:
            self._registry.leave(self)
        # Let go of the role (it keeps the stream: a handler still running sees Disconnected on
        # its next write): no reference cycle outlives the connection.
        self._hooks = NULL
        self.role = None
        if hooks != NULL:
            hooks.lost(role, exc)
        # After the role: one that failed the outbox with its own error (a client's ReadError)
        # keeps it for whoever waits on drain().
        self.outbox.lost(Disconnected("the connection is closed"))
        self.buffer.release()
        self._wake_disconnect()

    def pause_writing(self):
        self.outbox.pause()
        if self._write_s > 0:
            self._write_mark = self.outbox.buffered()
            self.deadline.set(SLOT_OUTPUT, self._write_s)

    def resume_writing(self):
        self.deadline.clear(SLOT_OUTPUT)
        self.outbox.resume()

    # ---------------------------------------------------------------- the server's shutdown
    def begin_shutdown(self):
        """The server stops accepting: the role finishes what it is doing, then closes."""
        if self._hooks != NULL and not self.closing:
            self._hooks.shutdown(self.role, SHUTDOWN_GRACEFUL)

    def abort_now(self):
        """The shutdown's grace period ran out: the role gives up and the connection drops."""
        if self._hooks != NULL:
            self._hooks.shutdown(self.role, SHUTDOWN_ABORT)
        self.abort()

    # ---------------------------------------------------------------- connection facts
    def is_disconnected(self) -> bool:
        """True once the peer closed (or half-closed) the connection, or it is closing."""
        return self.closing or self.peer_eof

    def wait_disconnected(self):
        """A future resolved when the peer closes (or half-closes) the connection, or it is lost."""
        if self._disconnect_waiter is None:
            self._disconnect_waiter = self._loop.create_future()
            if self.lost or self.peer_eof:
                self._disconnect_waiter.set_result(None)
        return self._disconnect_waiter

    # ---------------------------------------------------------------- Python face
    def set_transport(self, transport):
        """A new transport over the same socket (TLS started inside a proxy tunnel)."""
        self.transport = transport
        self.outbox.transport = transport
        self.gate.transport = transport
        transport.set_write_buffer_limits(high=self._write_high, low=self._write_low)

    @property
    def reading_paused(self) -> bool:
        return self.gate.paused

    @property
    def pause_reasons(self) -> int:
        return self.gate.reasons


class StreamProtocol(Stream, asyncio.BufferedProtocol):
    """What the loop sees: ``Stream`` plus asyncio's BufferedProtocol marker (stdlib asyncio
    takes the buffered read path only for BufferedProtocol instances; uvloop duck-types it)."""


cdef object new_stream(object loop, Py_ssize_t recv_initial, Py_ssize_t recv_max,
                       Py_ssize_t read_chunk, Py_ssize_t write_high, Py_ssize_t write_low,
                       object registry):
    cdef Stream s = StreamProtocol()
    s._loop = loop
    s.buffer = ReceiveBuffer(recv_initial, recv_max)
    s.outbox = Outbox(loop)
    s.gate = ReadGate()
    s.deadline = new_deadline(loop, s, _expired)
    s._read_chunk = read_chunk
    s._write_high = write_high
    s._write_low = write_low
    s._registry = registry
    return s
