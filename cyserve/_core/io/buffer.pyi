"""Receive buffer: the object ``get_buffer()`` hands to the loop (its buffer view is the free tail)."""

class ReceiveBuffer:
    """One reusable receive block per connection.

    ``ReceiveBuffer(initial_bytes=16384, max_bytes=131072)``; the block grows by doubling up to
    ``max_bytes`` and is compacted in place, never while a view of it is exported.
    """

    def __init__(self, initial_bytes: int = ..., max_bytes: int = ...) -> None: ...
    def __len__(self) -> int:
        """Bytes free at the tail (what a read may write)."""
    def __buffer__(self, flags: int) -> memoryview:
        """The free tail, writable (the buffer protocol a BufferedProtocol's read fills)."""
    def __getitem__(self, key: slice) -> memoryview:
        """A view of part of the free tail (asyncio's TLS transport reads into slices)."""
    def py_reserve(self, min_free: int) -> int:
        """Make ``min_free`` bytes free at the tail if possible; return the free bytes."""
    def py_commit(self, n: int) -> None:
        """Record that ``n`` bytes were written into the free tail."""
    def py_consume(self, n: int) -> None:
        """Drop ``n`` unconsumed bytes from the front."""
    def pending(self) -> bytes:
        """A copy of the unconsumed bytes."""
    @property
    def capacity_bytes(self) -> int: ...
    @property
    def free_bytes(self) -> int: ...
