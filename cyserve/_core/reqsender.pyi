"""The writing half of a client connection (base of ``cyserve._core.client.HTTPClientCore``)."""
import asyncio
from typing import Awaitable

from cyserve._core.http.body import BodyOwner

class RequestSender(BodyOwner):
    """Request body API: framed pieces, write backpressure, the end of the body."""

    transport: asyncio.Transport | None
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def send_body(self, data: bytes) -> Awaitable[None]:
        """Send the next piece of the body, framed as the head said; waits while the transport
        is above its high water mark.  Raises the connection's error once it failed."""
    def drain(self) -> Awaitable[None]:
        """Wait while writing is paused (bounded by ``write_s``)."""
    def end_body(self) -> None:
        """The body is complete (last chunk for chunked); ValueError if a Content-Length body
        came up short (the connection is then aborted)."""
    def stop_body(self) -> None:
        """Stop sending the body after an early final response; the connection then closes
        once that response is received (its request framing is unfinished)."""
    @property
    def request_open(self) -> bool: ...
    @property
    def write_paused(self) -> bool: ...
