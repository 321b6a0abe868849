"""The ASGI adapter's per-request path (``cyserve.asgi`` is the rest): the HTTP scope built from
a parsed head, ``HTTPExchange`` (one request's ``receive``/``send``), ``ASGIEntry`` (the core's
entry for one served ASGI app), and the byte walks they need, one C pass each."""
from typing import Any, Awaitable, Callable, Coroutine, Final, Iterable

from cyserve._core.http.head import Head
from cyserve._core.http.server import ServerRole

Message = dict[str, Any]

ASGI_VERSION: Final[dict[str, str]]
"""The ``asgi`` entry of every HTTP and WebSocket scope: version 3.0, spec 2.4."""

class ASGIEntry:
    """One served ASGI app's entry: the app, ``root_path``, the lifespan ``state`` and the
    fields added to every response, made once.

    ``in_path``: request paths already start with ``root_path`` (an ``App.mount`` prefix);
    otherwise it is prepended (a prefix a proxy stripped).  ``upgrade(conn, head, body)`` serves
    requests that ask to upgrade; ``before(conn, head)``, when given, runs first and returns
    False when it answered the request itself; ``send_file(exchange, path)`` serves
    ``http.response.pathsend``."""

    app: Any
    root_path: str
    state: dict[str, Any]
    extra: list[tuple[Any, Any]] | None
    def __init__(self, app: Callable[..., Awaitable[None]], root_path: str, in_path: bool,
                 state: dict[str, Any], extra: Iterable[tuple[Any, Any]] | None,
                 upgrade: Callable[[Any, Any, Any], Awaitable[None]] | None,
                 before: Callable[[Any, Any], bool] | None,
                 send_file: Callable[[HTTPExchange, str], Awaitable[None]]) -> None: ...
    def http_scope(self, conn: Any, head: Head) -> dict[str, Any]:
        """The ``http`` scope of the request ``head`` on ``conn``."""
    def handle(self, conn: ServerRole, head: Head, body: Any) -> Coroutine[Any, Any, None]:
        """The core's call for one request: the app with its scope and an ``HTTPExchange``
        (upgrades go to ``upgrade``)."""
    def run(self, conn: Any, head: Head, body: Any,
            extra: Iterable[tuple[Any, Any]] | None = None,
            on_start: Callable[[int], None] | None = None) -> Coroutine[Any, Any, None]:
        """The app for one plain HTTP request, with ``extra`` fields and ``on_start(status)``
        told when the response head is decided."""

class HTTPExchange:
    """One HTTP request's ``receive`` and ``send`` (``cyserve.asgi.http`` says what each
    message does)."""

    phase: int
    status: int
    length: int
    """The Content-Length the app declared, or -1."""
    head_request: bool
    failure: BaseException | None
    def receive(self) -> Coroutine[Any, Any, Message]: ...
    def send(self, message: Message) -> Awaitable[None]:
        """ASGI ``send``: the message takes effect when called (errors are raised by the call);
        the awaitable returned waits for what may wait (a streamed body while the client reads
        slowly, a pathsend file) and is otherwise already done."""
    def start_body(self, length: int) -> None:
        """Send the head of a streamed response framed with ``length`` (-1: chunked)."""
    def write(self, body: bytes, more: bool) -> Awaitable[None]:
        """A piece of the streamed body, written when called; the awaitable waits while the
        client reads slowly; ``more`` false ends it."""
    def finish(self) -> None:
        """The app returned: raise what the core must answer or close for."""
    def failed(self, exc: BaseException) -> None:
        """The app raised ``exc``: raise the refused body's ProtocolError instead when nothing
        was sent."""

def trailers_offered(scope: dict[str, Any]) -> bool:
    """The scope was made for a client that reads trailers (``TE: trailers``)."""
def merged_fields(fields: list[Any], extra: Iterable[tuple[Any, Any]]) -> list[Any]:
    """``fields`` plus each ``extra`` field whose name is not among them (any case)."""
def scope_headers(head: Head) -> list[tuple[bytes, bytes]]:
    """The fields of ``head`` as an ASGI scope's ``headers``: ``(name, value)`` bytes pairs in
    received order, names lower-cased, values without surrounding whitespace."""
def target_bytes(head: Head) -> tuple[bytes, bytes]:
    """``(raw_path, query_string)`` of the request-target; the path of an absolute-form target
    is what follows its authority (``b"/"`` when empty)."""
def declared_length(fields: Iterable[Any]) -> int:
    """The Content-Length among ``(name, value)`` pairs (bytes or str), -1 when none;
    ``ValueError`` for a malformed value or two different ones."""
def offers_trailers(head: Head) -> bool:
    """The request's ``TE`` lists ``trailers`` (RFC 9110 §10.1.4)."""
def end_with_trailers(conn: ServerRole, fields: Iterable[Any]) -> None:
    """End ``conn``'s chunked streamed response with ``fields`` as its trailer section (RFC 9112
    §7.1.2) through ``ServerRole.end_stream(trailers)``; a response without a body (HEAD, 204,
    304) or not chunked (Content-Length, HTTP/1.0) just ends; ``ValueError`` for a malformed
    field or one RFC 9110 §6.5.1 keeps out of trailers."""
