"""The writing half of a server connection (base of ``protocol.HTTPServerCore``)."""
import asyncio
from typing import Awaitable, Iterable

Fields = Iterable[tuple[str | bytes, str | bytes]] | None

class Sender:
    """Response API: whole responses, streamed bodies with backpressure, coalesced writes."""

    transport: asyncio.Transport | None
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def respond(self, status: int, fields: Fields, body: bytes, content_type: str | None = ...) -> None:
        """Send a whole response (head and small body in one write)."""
    def start_stream(self, status: int, fields: Fields = ..., content_type: str | None = ...,
                     content_length: int = ...) -> None:
        """Send a streamed response's head: chunked on HTTP/1.1 unless a length is given."""
    def write(self, data: bytes) -> Awaitable[None]:
        """Send part of a streamed body; await the result for backpressure."""
    def end_stream(self) -> None:
        """Finish a streamed body."""
    def drain(self) -> Awaitable[None]:
        """Wait while the transport is above its high water mark (no future unless paused)."""
    @property
    def response_started(self) -> bool: ...
