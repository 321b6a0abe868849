# cython: language_level=3
"""Receive buffer on asyncio's BufferedProtocol: one block per connection, no allocation per read."""
cimport cython
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memmove


@cython.final
cdef class ReceiveBuffer:
    """A reusable receive window; see buffer.pxd for the invariants."""

    def __cinit__(self, Py_ssize_t initial_bytes=16384, Py_ssize_t max_bytes=131072):
        if initial_bytes <= 0 or max_bytes < initial_bytes:
            raise ValueError(
                f"ReceiveBuffer needs 0 < initial_bytes <= max_bytes, got {initial_bytes}, {max_bytes}")
        self.data = <unsigned char*>malloc(initial_bytes)
        if self.data == NULL:
            raise MemoryError()
        self.capacity = initial_bytes
        self.max_capacity = max_bytes
        self.start = 0
        self.end = 0
        self._exports = 0

    def __dealloc__(self):
        if self.data != NULL:
            free(self.data)
            self.data = NULL

    cdef void consume(self, Py_ssize_t n) noexcept:
        self.start += n
        if self.start >= self.end:
            self.start = 0
            self.end = 0

    cdef Py_ssize_t reserve(self, Py_ssize_t min_free) except -1:
        cdef Py_ssize_t used, new_capacity
        cdef unsigned char* grown
        if self.capacity - self.end >= min_free:
            return self.capacity - self.end
        if self._exports:
            raise BufferError("ReceiveBuffer cannot move while a view of it is exported")
        used = self.end - self.start
        if self.start:
            memmove(self.data, self.data + self.start, used)
            self.start = 0
            self.end = used
        if self.capacity - self.end < min_free and self.capacity < self.max_capacity:
            new_capacity = self.capacity if self.capacity else min_free   # 0 after release()
            while new_capacity - used < min_free and new_capacity < self.max_capacity:
                new_capacity *= 2
            if new_capacity > self.max_capacity:
                new_capacity = self.max_capacity
            grown = <unsigned char*>realloc(self.data, new_capacity)
            if grown == NULL:
                raise MemoryError()
            self.data = grown
            self.capacity = new_capacity
        return self.capacity - self.end

    cdef int release(self) except -1:
        if self._exports or self.data == NULL:
            return 0
        free(self.data)
        self.data = NULL
        self.capacity = 0
        self.start = 0
        self.end = 0
        return 0

    cdef bytes take(self, Py_ssize_t n):
        return PyBytes_FromStringAndSize(<char*>self.data + self.start, n)

    # The loop writes into the free tail through this view (uvloop and stdlib both ask for a
    # writable buffer, read into it, release it, then call buffer_updated).
    def __getbuffer__(self, Py_buffer* view, int flags):
        view.buf = self.data + self.end
        view.obj = self
        view.len = self.capacity - self.end
        view.readonly = 0
        view.itemsize = 1
        view.format = NULL
        view.ndim = 1
        view.shape = NULL
        view.strides = NULL
        view.suboffsets = NULL
        view.internal = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        if flags & PyBUF_ND:                  # shape required
            view.shape = &view.len
        if (flags & PyBUF_STRIDES) == PyBUF_STRIDES:
            view.strides = &view.itemsize
        self._exports += 1

    def __releasebuffer__(self, Py_buffer* view):
        self._exports -= 1

    def __getitem__(self, key):
        # asyncio's TLS transport reads into slices of what get_buffer() returned; a view of the
        # free tail serves that path without costing the plain one anything.
        return memoryview(self)[key]

    def __len__(self):
        # stdlib asyncio checks len() of what get_buffer() returned: the writable free tail.
        return self.capacity - self.end

    # Python face, for tests.
    def py_reserve(self, Py_ssize_t min_free) -> int:
        return self.reserve(min_free)

    def py_commit(self, Py_ssize_t n) -> None:
        self.commit(n)

    def py_consume(self, Py_ssize_t n) -> None:
        if n < 0 or n > self.end - self.start:
            raise ValueError(f"cannot consume {n} of {self.end - self.start} buffered bytes")
        self.consume(n)

    def pending(self) -> bytes:
        return self.take(self.end - self.start)

    @property
    def capacity_bytes(self) -> int:
        return self.capacity

    @property
    def free_bytes(self) -> int:
        return self.capacity - self.end
