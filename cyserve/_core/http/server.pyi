"""The HTTP/1.1 server role on a ``Stream``; what the app sees as ``conn``."""
import asyncio
from typing import Any, Awaitable, Callable, Iterable

from cyserve._core.http.state import ServerState
from cyserve._core.io.stream import Stream, StreamProtocol

Fields = Iterable[tuple[str | bytes, str | bytes]] | None

class ServerRole:
    """One connection's requests and responses."""

    stream: Stream
    forwarded: tuple[tuple[str, int] | None, str | None, str | None] | None
    """What a trusted proxy said about the current request, ``(client, scheme, host)``, each
    None when it said nothing of it; set by the proxy-headers middleware, None when each request
    starts.  ``Request.client``/``url`` and the access log read it."""
    def respond(self, status: int, fields: Fields, body: bytes, content_type: str | None = ...) -> None:
        """Send a whole response: head and body in one write when the body is small.

        ``fields``: ``(name, value)`` pairs (str or bytes) or None; Content-Length,
        Transfer-Encoding and Connection are decided by the server (a ``Connection: close`` among
        them is honoured).  ``body``: bytes-like.  ``Disconnected`` once the client is gone.
        """
    def start_stream(self, status: int, fields: Fields = ..., content_type: str | None = ...,
                     content_length: int = ...) -> None:
        """Send the head of a streamed response; the body follows through ``write``.

        With ``content_length`` >= 0 the body is sent as is and must be exactly that long; else it
        is chunked (HTTP/1.1) or delimited by closing the connection (HTTP/1.0).
        """
    def write(self, data: bytes) -> Awaitable[None]:
        """Send a piece of a streamed body; await the result for backpressure.  Raises
        ``Disconnected`` once the client is gone, so a producer stops."""
    def end_stream(self, trailers: Fields = None) -> None:
        """Finish a streamed body (the last chunk for chunked framing).

        ``trailers``: ``(name, value)`` pairs (str or bytes) sent after a chunked body as its
        trailer section: the last chunk, the fields, the empty line, in one write (RFC 9112
        §7.1.2).  They are checked as head fields are (a token name; a value without CR, LF,
        NUL or other controls, RFC 9110 §5.5), and a field that may not be a trailer (RFC 9110
        §6.5.1: Content-Length, Transfer-Encoding, Connection, TE, Trailer, Host, controls such
        as Cache-Control, Date, Location, Vary, authentication fields, Set-Cookie, Content-* but
        Content-Digest) is a ``ValueError``.  So is any field for a body framed by
        Content-Length (``start_stream(..., content_length=n)``): only the chunked coding has a
        trailer section.  When the response has no body (HEAD, 204, 304) or the client speaks
        HTTP/1.0 (the body ends with the connection), they are checked and dropped: no trailer
        section exists, and a recipient may discard trailers anyway (RFC 9110 §6.5.1).  After a
        ``ValueError`` the response is still streaming.  The client only promises to read
        trailers with ``TE: trailers`` (RFC 9110 §10.1.4); a ``Trailer`` field in the head
        announcing them is the handler's to add (RFC 9110 §6.6.2).
        """
    def drain(self) -> Awaitable[None]:
        """Wait while the transport is above its high water mark.  Creates no future unless writing
        is paused; raises ``Disconnected`` when the client left."""
    def upgrade(self, protocol: str, fields: Fields, take_over: Callable[[Stream], None]) -> None:
        """Switch this connection to ``protocol`` (RFC 9110 §7.8, §15.2.2).

        Writes ``101 Switching Protocols`` with ``Upgrade: protocol``, ``Connection: Upgrade`` and
        ``fields``, then calls ``take_over(stream)``, which must attach the next role to the stream
        (``RuntimeError`` and the connection closes otherwise).  The bytes the client sent after
        this request's head are that role's first input.  The request must have asked to upgrade
        (``Connection: upgrade`` and ``Upgrade``) and its body must be complete.
        """
    @property
    def response_started(self) -> bool: ...
    @property
    def trailers_allowed(self) -> bool:
        """A streamed response is in progress whose body goes out chunked (HTTP/1.1, no
        Content-Length, a status and method with content): ``end_stream(trailers)`` sends them."""
    @property
    def requests_served(self) -> int: ...

def server_connection(state: ServerState) -> StreamProtocol:
    """A new server connection (the listener's protocol factory)."""
