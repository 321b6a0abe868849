"""Body stream: fed by a connection's role, read by a handler or a client's caller."""
from typing import AsyncIterator

class BodyStream:
    """An async stream of one message body's chunks; made by the core, never by hand.

    Holds the connection's reading while more than its high water mark is unread, and lets go at
    its low one.
    """

    buffered: int
    eof: bool
    async def read(self) -> bytes:
        """The next chunk, or ``b""`` at the end; raises the body's error if it failed."""
    async def read_all(self) -> bytes:
        """Everything not yet read, joined."""
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def __anext__(self) -> bytes: ...
