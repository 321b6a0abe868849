# cython: language_level=3
"""The body stream (see body.pxd)."""
cimport cython
from cpython.bytes cimport PyBytes_GET_SIZE

from cyserve._core.io.readgate cimport PAUSE_BACKLOG
from cyserve._core.io.stream cimport Stream

from collections import deque

import asyncio

from cyserve.errors import again

cdef object _get_running_loop = asyncio.get_running_loop


@cython.final
cdef class BodyStream:
    """An async stream of body chunks: ``await read()`` returns the next chunk, ``b""`` at the end.

    ``read_all()`` joins what is left; ``async for chunk in stream`` iterates.  A failed body
    (peer gone, limit passed, malformed chunking, read timeout) raises its exception on every
    later read.
    """

    def __cinit__(self):
        self._chunks = deque()
        self._waiter = None
        self._exc = None
        self._stream = None
        self._owner = None
        self._on_first_read = NULL

    cdef int feed(self, bytes data) except -1:
        if PyBytes_GET_SIZE(data) == 0:
            return 0
        self._chunks.append(data)
        self.buffered += PyBytes_GET_SIZE(data)
        if self.buffered > self._high and self._stream is not None:
            self._stream.hold_reading(PAUSE_BACKLOG)
        self._wake()
        return 0

    cdef int feed_eof(self) except -1:
        self.eof = True
        self._wake()
        return 0

    cdef bytes take_all(self):
        cdef bytes data = b"".join(self._chunks)
        self._chunks.clear()
        self.buffered = 0
        return data

    cdef int fail(self, object exc) except -1:
        if self._exc is None and not (self.eof and not self._chunks):
            self._exc = exc
        self.detach()
        self._wake()
        return 0

    cdef int detach(self) except -1:
        cdef Stream stream = self._stream
        self._stream = None
        self._owner = None
        self._on_first_read = NULL
        if stream is not None:
            stream.release_reading(PAUSE_BACKLOG)
        return 0

    cdef int _taken(self, Py_ssize_t n) except -1:
        self.buffered -= n
        if self._stream is not None and self.buffered <= self._low:
            self._stream.release_reading(PAUSE_BACKLOG)
        return 0

    cdef int _wake(self) except -1:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return 0

    async def read(self) -> bytes:
        """The next chunk of the body, or ``b""`` once it has all been read."""
        cdef bytes chunk
        if not self._wanted:
            self._wanted = True
            if self._on_first_read != NULL:
                self._on_first_read(self._owner)
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._taken(PyBytes_GET_SIZE(chunk))
                return chunk
            if self._exc is not None:
                raise again(self._exc)   # a copy: see cyserve.errors.again
            if self.eof:
                return b""
            self._waiter = _get_running_loop().create_future()
            await self._waiter

    async def read_all(self) -> bytes:
        """Everything not yet read, joined (bounded by the server's body limit)."""
        parts = []
        while True:
            chunk = await self.read()
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk


cdef BodyStream new_body(Stream stream, Py_ssize_t high, Py_ssize_t low, object owner,
                         first_read_fn on_first_read):
    cdef BodyStream body = BodyStream.__new__(BodyStream)
    body._stream = stream
    body._high = high
    body._low = low
    body._owner = owner
    body._on_first_read = on_first_read
    return body
