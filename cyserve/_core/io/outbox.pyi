"""The one way bytes leave a connection: coalesced writes, write backpressure, drain."""
from typing import Any, Awaitable

class Ready:
    """An awaitable that is already done (what ``drain()`` returns while writing is not paused)."""

    def __await__(self) -> Any: ...

class Outbox:
    """Made by the stream; see ``outbox.pxd`` for the C face the roles use."""

    corked: bool
    paused: bool
    closed: bool
    def py_send(self, data: bytes) -> None: ...
    def py_drain(self) -> Awaitable[None]:
        """Already done unless the transport is paused; raises once the connection is closed."""
    @property
    def buffered_bytes(self) -> int:
        """Written bytes not yet on the wire (queued here plus the transport's buffer)."""
