"""What the connections of one client share (``cyserve._core.clientstate``)."""
import asyncio

class ClientState:
    """Shared by the connections of one ``Client``: limits and water marks in C fields."""

    loop: asyncio.AbstractEventLoop
    keepalive_s: float
    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_head_bytes: int = 65536,
                 max_header_count: int = 100, max_trailer_bytes: int = 8192,
                 read_high: int = 262144, read_low: int = 65536, write_high: int = 262144,
                 write_low: int = 65536, keepalive_s: float = 5.0, read_chunk: int = 65536) -> None:
        """``read_high``/``read_low``: unread streamed body at which reading pauses/resumes;
        ``write_*``: the transport's write water marks; ``keepalive_s``: an idle connection
        closes after this (0: never); ``read_chunk``: free bytes offered to each socket read."""
