# cython: language_level=3
"""Contract of the receive buffer (DESIGN step 1).

``ReceiveBuffer`` owns one malloc'd block.  The protocol hands the buffer object itself to the loop
from ``get_buffer()``: its buffer interface exposes the free tail ``data[end:capacity]``, so a read
allocates nothing.  Unconsumed bytes are ``data[start:end]``.

Invariants: ``0 <= start <= end <= capacity <= max_capacity``; the block is never moved or resized
while a view is exported (``_exports > 0``): ``reserve`` raises ``BufferError`` then.
"""


cdef class ReceiveBuffer:
    cdef unsigned char* data          # owned: malloc'd in __cinit__, freed in __dealloc__
    cdef Py_ssize_t capacity
    cdef Py_ssize_t max_capacity      # growth stops here (head limit plus read slack)
    cdef Py_ssize_t start             # first unconsumed byte
    cdef Py_ssize_t end               # one past the last received byte
    cdef int _exports                 # live buffer views handed to the loop

    # Pointer to the first unconsumed byte; valid until the next reserve() or consume().
    cdef inline const unsigned char* head(self) noexcept:
        return self.data + self.start

    cdef inline Py_ssize_t size(self) noexcept:
        return self.end - self.start

    cdef inline Py_ssize_t free(self) noexcept:
        return self.capacity - self.end

    # Drop n bytes from the front; an emptied buffer rewinds to offset 0 (no copy).
    cdef void consume(self, Py_ssize_t n) noexcept
    # Make at least min_free bytes free at the tail: compact (memmove to offset 0), then grow by
    # doubling up to max_capacity.  Returns the free bytes now available (may stay < min_free
    # at max_capacity).
    cdef Py_ssize_t reserve(self, Py_ssize_t min_free) except -1
    # The kernel wrote n bytes at the free tail.
    cdef inline int commit(self, Py_ssize_t n) except -1:
        if n < 0 or n > self.capacity - self.end:
            raise ValueError(f"commit of {n} bytes does not fit the {self.capacity - self.end} free")
        self.end += n
        return 0
    # The connection is gone: free the block now (a handler still running may hold the
    # connection for a while); size() is 0 afterwards, and reserve() would allocate afresh.
    cdef int release(self) except -1
    # A bytes copy of data[start:start+n] (n <= size()).
    cdef bytes take(self, Py_ssize_t n)
