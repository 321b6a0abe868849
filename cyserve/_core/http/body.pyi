"""Request body stream fed by the core."""
from typing import AsyncIterator

class BodyOwner:
    """Base of connection classes owning body streams."""

class BodyStream:
    """An async stream of one request body's chunks."""

    buffered: int
    eof: bool
    def __init__(self, owner: BodyOwner) -> None: ...
    async def read(self) -> bytes:
        """The next chunk, or ``b""`` at the end; raises the body's error if it failed."""
    async def read_all(self) -> bytes:
        """Everything not yet read, joined."""
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def __anext__(self) -> bytes: ...
