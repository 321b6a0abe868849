# cython: language_level=3
"""The outbox: coalesced writes, write backpressure, drain (see outbox.pxd)."""
cimport cython
from cpython.bytes cimport PyBytes_GET_SIZE

from cyserve.errors import Disconnected, again

# Queued output is flushed past this size even while corked: the transport's own buffer, and so
# its water marks and drain(), must see a producer that writes a lot within one read pass.
cdef enum:
    FLUSH_BYTES = 65536


@cython.final
cdef class Ready:
    """An awaitable that is already done: ``drain()`` when writing is not paused (no future)."""

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration


READY = Ready()


@cython.final
cdef class Outbox:
    """The outbound side of one connection (see outbox.pxd)."""

    def __cinit__(self, loop):
        self._loop = loop
        self._queue = []
        self._queued = 0
        self.transport = None
        self.error = None
        self._waiter = None

    cdef int send(self, bytes data) except -1:
        if self.closed:
            raise again(self.error)
        if self.corked:
            self._queue.append(data)
            self._queued += PyBytes_GET_SIZE(data)
            if self._queued >= FLUSH_BYTES:
                self.flush()
        else:
            self.transport.write(data)
        return 0

    cdef int send3(self, bytes a, bytes b, bytes c) except -1:
        if self.closed:
            raise again(self.error)
        if self.corked:
            self._queue.append(a)
            self._queue.append(b)
            self._queue.append(c)
            self._queued += PyBytes_GET_SIZE(a) + PyBytes_GET_SIZE(b) + PyBytes_GET_SIZE(c)
            if self._queued >= FLUSH_BYTES:
                self.flush()
        else:
            self.transport.writelines((a, b, c))
        return 0

    cdef int flush(self) except -1:
        cdef list queue = self._queue
        if not queue:
            return 0
        self._queue = []
        self._queued = 0
        if len(queue) == 1:
            self.transport.write(queue[0])
        else:
            self.transport.write(b"".join(queue))
        return 0

    cdef int pause(self) except -1:
        self.paused = True
        return 0

    cdef int resume(self) except -1:
        self.paused = False
        return self.wake()

    cdef int wake(self) except -1:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return 0

    cdef int close(self, object error) except -1:
        if self.closed:
            return 0
        if self._queued and self.transport is not None:
            self.flush()
        self.closed = True
        self.error = error if error is not None else Disconnected("the connection is closed")
        return 0

    cdef int lost(self, object error) except -1:
        self._queue = []
        self._queued = 0
        if not self.closed:
            self.closed = True
            self.error = error if error is not None else Disconnected("the connection is closed")
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(again(self.error))
        return 0

    cdef object drain(self):
        if self.closed:
            raise again(self.error)
        if self.transport is not None and self.transport.is_closing():
            # The transport failed a send (the peer reset): connection_lost comes on a later
            # loop turn, but a producer that writes without ever suspending would not see it.
            self.lost(Disconnected("the connection was reset"))
            raise again(self.error)
        if not self.paused:
            return READY
        if self._waiter is None:
            self._waiter = self._loop.create_future()
        return self._waiter

    cdef Py_ssize_t buffered(self) except -1:
        cdef Py_ssize_t n = self._queued
        if self.transport is not None:
            n += self.transport.get_write_buffer_size()
        return n

    # Python face, for tests and Python-level protocols.
    def py_send(self, bytes data) -> None:
        self.send(data)

    def py_drain(self):
        return self.drain()

    @property
    def buffered_bytes(self) -> int:
        return self.buffered()
