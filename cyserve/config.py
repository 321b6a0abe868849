"""Limits, timeouts and water marks: every default of the server in one place.

The core reads these once per connection (they are copied into C fields), so changing a
``ServerConfig`` after the server started has no effect on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Limits", "Timeouts", "WaterMarks", "ServerConfig"]


@dataclass(frozen=True)
class Limits:
    """Sizes the server refuses past, with the status it answers (RFC 9110 §15.5)."""

    max_request_line_bytes: int = 8 * 1024  # 414 URI Too Long
    max_head_bytes: int = 64 * 1024  # 431 Request Header Fields Too Large
    max_header_count: int = 100  # 431
    max_body_bytes: int = 16 * 1024 * 1024  # 413 Content Too Large
    max_trailer_bytes: int = 8 * 1024  # 431 (chunked trailers)
    # Pipelined bytes buffered while a request is in flight before reading pauses (RFC 9112
    # §9.3.2): the receive buffer itself is the bounded queue of waiting requests.
    max_pipeline_bytes: int = 64 * 1024
    max_keepalive_requests: int = 0  # 0: unlimited requests per connection

    def __post_init__(self) -> None:
        for name in ("max_request_line_bytes", "max_head_bytes", "max_header_count", "max_body_bytes",
                     "max_trailer_bytes", "max_pipeline_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")
        if self.max_request_line_bytes > self.max_head_bytes:
            raise ValueError("Limits.max_request_line_bytes cannot exceed max_head_bytes")
        if self.max_head_bytes >= 2**31:
            raise ValueError("Limits.max_head_bytes must stay below 2 GiB (header offsets are 32-bit)")


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds; a value <= 0 disables that timer."""

    first_request_s: float = 10.0  # idle after accept, before any byte of a request
    head_s: float = 10.0  # total time to receive one request head (slowloris)
    body_idle_s: float = 30.0  # no body byte for this long while a handler waits for it
    keepalive_s: float = 5.0  # idle between two requests on a kept-alive connection
    shutdown_s: float = 10.0  # graceful shutdown: how long in-flight requests may still run


@dataclass(frozen=True)
class WaterMarks:
    """Backpressure thresholds in bytes (DESIGN principle 5)."""

    write_high: int = 64 * 1024  # transport pauses writing above this buffered amount
    write_low: int = 16 * 1024
    body_high: int = 256 * 1024  # unread request body buffered before reading pauses
    body_low: int = 64 * 1024

    def __post_init__(self) -> None:
        if not 0 <= self.write_low <= self.write_high:
            raise ValueError("WaterMarks need 0 <= write_low <= write_high")
        if not 0 <= self.body_low <= self.body_high:
            raise ValueError("WaterMarks need 0 <= body_low <= body_high")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the core needs to know about one listening server."""

    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    water_marks: WaterMarks = field(default_factory=WaterMarks)
    server_header: str | None = "cyserve"  # None: send no Server header
    receive_buffer_bytes: int = 64 * 1024  # initial receive buffer per connection
    backlog: int = 1024
