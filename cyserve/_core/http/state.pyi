"""What the connections of one server, or of one client, share: configuration in C fields."""
import asyncio
from typing import Any, Awaitable, Callable, Protocol

from cyserve._core.http.head import Head
from cyserve.config import ClientLimits, ServerConfig

class ResponseObserver(Protocol):
    """What ``ServerState.observer`` is (the access log, the metrics, a fan-out of both)."""

    def response_done(self, conn: Any, head: Head | None, status: int, sent_bytes: int,
                      duration_s: float) -> None:
        """Called once per response when its last byte was handed to the connection's outbox,
        or when the connection was lost (or the handler failed) after the response started,
        then with what was sent.

        ``conn``: the server role (``conn.stream.peername``, ``conn.forwarded``); ``head``: the
        request's, or None for an answer the core gave before a head was parsed (400, 408, 431,
        a per-address 503); ``sent_bytes``: the response's content bytes (no head, no chunk
        framing; 0 for HEAD, 1xx, 204, 304), like Apache's ``%B``; ``duration_s``: from the
        moment the request head was complete (``loop.time()``) to now.  An exception raised
        here is logged on ``cyserve.server`` and does not affect the connection.
        """

def trust_loopback(host: str) -> bool:
    """True for loopback hosts (127.0.0.0/8, ::1) and ``"unix:"``."""

class ServerState:
    """The app's entry point, the loop, the configuration and the registry of live streams."""

    entry: Callable[[Any, Any, Any], Awaitable[None]]
    loop: asyncio.AbstractEventLoop
    connections: set[Any]
    shutting_down: bool
    date_header: bool
    observer: ResponseObserver | None
    """Told of every finished response (``response_done``); None: nobody (the default).  Read
    when each request starts: a new value applies from the next request."""
    @property
    def requests_total(self) -> int:
        """Requests whose head was parsed since the state was made (refused ones included)."""
    @property
    def requests_active(self) -> int:
        """Handlers running now."""
    @property
    def limit_concurrency(self) -> int:
        """503 while more connections than this are open or this many handlers run; 0: off."""
    @property
    def limit_connections_per_ip(self) -> int:
        """503 and close for a connection from a host with this many open already; 0: off."""
    @property
    def proxy_protocol(self) -> bool:
        """A PROXY protocol header (v1 or v2) is read before HTTP from trusted peers."""
    proxy_trusted: Callable[[str], bool]
    """Which peers may (and must) send a PROXY header: called once per connection with the
    socket peer's host, ``"unix:"`` for a Unix socket.  Default: ``trust_loopback``."""
    def connections_from(self, host: str) -> int:
        """Open connections counted under ``host`` (while limit_connections_per_ip is on)."""
    def __init__(self, entry: Callable[..., Awaitable[None]], config: ServerConfig,
                 loop: asyncio.AbstractEventLoop | None = ...) -> None: ...
    def join(self, stream: Any) -> None:
        """A connection started (the stream reports it)."""
    def leave(self, stream: Any) -> None:
        """A connection ended."""
    def begin_shutdown(self) -> None:
        """Close idle connections now; busy ones close after their current response."""
    async def wait_closed(self) -> None:
        """Return once every connection is gone."""
    def abort_all(self) -> None:
        """Cancel running handlers and drop every connection."""

class ClientState:
    """Shared by the connections of one ``Client``."""

    loop: asyncio.AbstractEventLoop
    keepalive_s: float
    def __init__(self, loop: asyncio.AbstractEventLoop, limits: ClientLimits) -> None: ...
