# cython: language_level=3
"""Request body stream (see body.pxd)."""
cimport cython
from collections import deque

import asyncio

cdef object _get_running_loop = asyncio.get_running_loop


cdef class BodyOwner:
    """Base of the connection classes that own body streams; the defaults do nothing."""

    cdef int _body_consumed(self, Py_ssize_t n) except -1:
        return 0

    cdef int _body_wanted(self) except -1:
        return 0


@cython.final
cdef class BodyStream:
    """An async stream of body chunks: ``await read()`` returns the next chunk, ``b""`` at the end.

    ``read_all()`` joins what is left; ``async for chunk in stream`` iterates.  A failed body
    (client gone, limit passed, malformed chunking, read timeout) raises its exception on every
    later read.
    """

    def __cinit__(self, BodyOwner owner):
        self._owner = owner
        self._chunks = deque()
        self._waiter = None
        self._exc = None
        self.buffered = 0
        self.eof = False
        self._wanted = False

    cdef int feed(self, bytes data) except -1:
        if not data:
            return 0
        self._chunks.append(data)
        self.buffered += len(data)
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
        self._wake()
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
            self._owner._body_wanted()
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self.buffered -= len(chunk)
                self._owner._body_consumed(len(chunk))
                return chunk
            if self._exc is not None:
                raise self._exc
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
