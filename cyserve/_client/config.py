"""The client's limits and timeouts: every default of ``cyserve.Client`` in one place."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = ["ClientLimits", "ClientTimeouts", "TimeoutArg", "to_timeouts"]


@dataclass(frozen=True)
class ClientLimits:
    """Pool sizes and the bounds a response must stay inside."""

    max_connections: int = 100  # open connections of one Client, all origins together
    max_connections_per_host: int = 20  # open connections to one origin (scheme, host, port)
    keepalive_expiry_s: float = 5.0  # an idle pooled connection is closed after this
    max_redirects: int = 10  # more hops raise TooManyRedirects
    max_head_bytes: int = 64 * 1024  # a longer response head is a RemoteProtocolError
    max_header_count: int = 100
    max_trailer_bytes: int = 8 * 1024  # chunked trailer section
    max_body_bytes: int = 64 * 1024 * 1024  # read()/text()/json() buffer at most this (decoded)
    max_decoded_bytes: int = 1024 * 1024 * 1024  # a compressed body decodes to at most this
    read_high: int = 256 * 1024  # unread streamed body before the socket stops being read
    read_low: int = 64 * 1024  # reading resumes at or below this
    write_high: int = 256 * 1024  # request bytes queued in the transport before uploads wait
    write_low: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_connections_per_host", "max_head_bytes",
                     "max_header_count", "max_body_bytes", "max_decoded_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ClientLimits.{name} must be positive, got {getattr(self, name)}")
        if self.max_redirects < 0:
            raise ValueError("ClientLimits.max_redirects must be >= 0")
        if not 0 <= self.read_low <= self.read_high or not 0 <= self.write_low <= self.write_high:
            raise ValueError("ClientLimits water marks need 0 <= low <= high")


@dataclass(frozen=True)
class ClientTimeouts:
    """Deadlines in seconds; ``None`` (or <= 0) disables one.  Each raises its own exception:
    ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout, TotalTimeout."""

    connect_s: float | None = 10.0  # TCP connect + TLS handshake + proxy CONNECT
    read_s: float | None = 30.0  # longest silence while response bytes are expected
    write_s: float | None = 30.0  # longest wait for the server to accept request bytes
    pool_s: float | None = 10.0  # longest wait for a free connection of the pool
    total_s: float | None = None  # the whole request, redirects and body included


TimeoutArg = Union[ClientTimeouts, float, int, None]


def to_timeouts(value: TimeoutArg | object) -> ClientTimeouts:
    """``timeout=5`` means 5 s for connect, read, write and pool; ``None`` disables them all."""
    if isinstance(value, ClientTimeouts):
        return value
    if value is None:
        return ClientTimeouts(None, None, None, None, None)
    if isinstance(value, (int, float)):
        return ClientTimeouts(float(value), float(value), float(value), float(value), None)
    raise TypeError(f"timeout must be a number, None or ClientTimeouts, not {type(value).__name__}")
