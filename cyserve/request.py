"""Request: a lazy view over the core's parsed head plus access to the body."""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable
from urllib.parse import unquote

from cyserve import _json
from cyserve.compat import BackgroundAdder, Prepared
from cyserve.context import RequestGlobals, bind_request
from cyserve.datastructures import URL, FormData, Headers, QueryParams
from cyserve.errors import HTTPError

if TYPE_CHECKING:
    from cyserve._core.http.head import Head
    from cyserve.proxy import Forwarded
    from cyserve._core.http.server import ServerRole
    from cyserve.multipart import FormLimits

__all__ = ["Request", "State", "parse_cookie_header"]


class State(dict[str, Any]):
    """``request.state``: a dict whose entries are also attributes.

    ``request.state["user"]`` and ``request.state.user`` are the same entry (AstraAPI's, that is
    Starlette's, attribute spelling next to cyserve's item one).  It stays a dict, so item access
    keeps C speed for the middleware that use it (sessions, CSRF, request ids) and every dict
    method works.  Those methods' names (``get``, ``items``, ...) are not attributes to set: the
    method would hide the entry, so setting one raises ``AttributeError`` (use an item instead).
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"request.state has no {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(dict, name):
            raise AttributeError(f"request.state.{name} is a dict method: "
                                 f"use request.state[{name!r}] for this entry")
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"request.state has no {name!r}") from None

    def __repr__(self) -> str:
        return f"State({dict.__repr__(self)})"


class Request:
    """One HTTP request as a handler sees it.

    Nothing is decoded until asked: ``headers``, ``query`` and ``path`` build Python objects on
    first use, ``state`` too.  The body is either already complete (``bytes``) or a stream the
    core feeds, with reading paused and resumed on the server's water marks.

    The seeds' spellings (``cyserve.compat``, docs/migrating.md) are thin aliases here: Blazeio's
    ``pull()`` (``stream()``) and ``prepare()``/``write()``/``eof()`` (a response the handler
    writes itself), PyLiteFlux's ``bg.add()`` (``background()``).
    """

    __slots__ = ("_conn", "_head", "_body", "_body_bytes", "_path", "_query", "_headers",
                 "path_params", "_state", "_background", "_g", "_cookies", "_url", "_id", "_form",
                 "_chain", "_prepared")
    # Slots set only when used (see __init__).
    _chain: Callable[[Request], Awaitable[Any]]
    _state: State
    _prepared: Prepared

    def __init__(self, conn: Any, head: Any, body: Any) -> None:
        self._conn: ServerRole = conn
        self._head: Head = head
        self._body = body
        self._body_bytes: bytes | None = body if type(body) is bytes else None
        self._path: str | None = None
        self._query: QueryParams | None = None
        self._headers: Headers | None = None
        self.path_params: dict[str, Any] = {}
        #: ``(fn, args, kwargs)`` added by ``background()``; the App runs them after the response.
        self._background: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] | None = None
        self._g: RequestGlobals | None = None
        self._cookies: dict[str, str] | None = None
        self._url: URL | None = None
        self._id: str | None = None
        self._form: FormData | None = None
        # ``_chain``, the route chain the App's global middleware leads to, is set by App.handle
        # only when there is global middleware; nothing else reads it.  ``_state`` (made by the
        # first use of ``state``) and ``_prepared`` (set by ``prepare()``) are left unset too: a
        # request that never uses them pays nothing for them.
        bind_request(self)  # for cyserve.context.g and current_request()

    @property
    def method(self) -> str:
        return self._head.method

    @property
    def path(self) -> str:
        """The percent-decoded path (UTF-8), without the query."""
        if self._path is None:
            raw = self._head.path
            self._path = unquote(raw, errors="surrogateescape") if "%" in raw else raw
        return self._path

    @property
    def raw_path(self) -> str:
        """The path exactly as sent (percent-encoding kept)."""
        return self._head.path

    @property
    def query_string(self) -> str:
        return self._head.query_string

    @property
    def query(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self._head.query_string)
        return self._query

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._head)
        return self._headers

    @property
    def http_version(self) -> str:
        return "1.1" if self._head.version == 11 else "1.0"

    @property
    def client(self) -> tuple[str, int] | None:
        """The client's (host, port): what a trusted proxy reported (``cyserve.ProxyHeaders``;
        port 0 when it gave none), else the connection's peer; ``None`` for a Unix-socket peer."""
        forwarded = self._conn.forwarded  # None unless a trusted proxy said something
        if forwarded is not None and forwarded[0] is not None:
            return forwarded[0]
        peer = self._conn.stream.peername
        return (peer[0], peer[1]) if peer else None

    @property
    def forwarded(self) -> Forwarded | None:
        """What a trusted proxy said about this request, ``(client, scheme, host)`` (see
        ``cyserve.proxy``), or ``None``.  Set by ``ProxyHeaders``; ``client`` and ``url`` read it.
        It lives on the connection (``conn.forwarded``, reset by the core for each request) so
        that the access log sees it too."""
        return self._conn.forwarded

    @forwarded.setter
    def forwarded(self, value: Forwarded | None) -> None:
        self._conn.forwarded = value
        self._url = None  # rebuilt with the proxy's scheme and host on next use

    @property
    def content_length(self) -> int | None:
        length = self._head.content_length
        return None if length < 0 else length

    @property
    def cookies(self) -> dict[str, str]:
        """The Cookie header's pairs (RFC 6265 §5.4), parsed tolerantly; see ``parse_cookie_header``."""
        if self._cookies is None:
            values = self._head.get_all("cookie")
            self._cookies = parse_cookie_header("; ".join(values)) if values else {}
        return self._cookies

    @property
    def url(self) -> URL:
        """The URL the client asked for.  The scheme: a trusted proxy's (``ProxyHeaders``), else
        this connection's (https only over TLS).  The authority: a trusted proxy's, else that of
        an absolute-form target, else Host (RFC 9112 §3.2.2, §3.3), else the address the
        connection came in on.  Path and query as sent."""
        if self._url is None:
            forwarded = self._conn.forwarded
            scheme: str | None = None
            authority: str | None = None
            if forwarded is not None:
                scheme, authority = forwarded[1], forwarded[2]
            if scheme is None:
                transport = self._conn.stream.transport
                tls = transport is not None and transport.get_extra_info("sslcontext") is not None
                scheme = "https" if tls else "http"
            target = self._head.target
            if not authority and target[:1] != "/" and "://" in target:
                authority = target.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
            if not authority:
                authority = self._head.get("host")
            if not authority:
                host, port = self._conn.stream.sockname[:2]
                authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            self._url = URL.build(scheme, authority, self._head.path, self._head.query_string)
        return self._url

    def absolute_url(self, path: str) -> str:
        """``path`` (e.g. ``app.url_for("item", id=3)``) as an absolute URL on the origin the
        client used: ``url``'s scheme, host and port, so behind a trusted proxy the public one."""
        if path[:1] != "/":
            raise ValueError(f"absolute_url() needs a path starting with '/', got {path!r}")
        url = self.url
        return f"{url.scheme}://{url.netloc}{path}"

    @property
    def id(self) -> str:
        """A unique id for this request (32 hex digits, made on first use); settable, e.g. by
        a middleware that adopts an id from a trusted proxy."""
        if self._id is None:
            self._id = uuid.uuid4().hex
        return self._id

    @id.setter
    def id(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise TypeError("Request.id must be a non-empty str")
        self._id = value

    @property
    def state(self) -> State:
        """Per-request values for middleware and handlers, as items or attributes (``State``)."""
        try:
            return self._state
        except AttributeError:
            self._state = state = State()
            return state

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        self._state = value if type(value) is State else State(value)

    @property
    def session(self) -> Any:
        """The signed-cookie session (``request.state["session"]``, Starlette's spelling), made by
        the ``Sessions`` middleware; ``RuntimeError`` on a route it does not wrap."""
        try:
            return self._state["session"]
        except (AttributeError, KeyError):
            raise RuntimeError("request.session needs the Sessions middleware on this route: "
                               "app.use(Sessions([key]))") from None

    @property
    def g(self) -> RequestGlobals:
        """This request's namespace, the one ``cyserve.context.g`` stands for."""
        if self._g is None:
            self._g = RequestGlobals()
        return self._g

    def background(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` after the response is sent: coroutine functions on the
        loop, plain functions in a thread pool; both see this request's context and ``g``.

        Nothing queued runs when handling the request raised (even if the error was answered
        by an error page).  The request's form files stay open until the last call returned,
        so ``fn`` may be handed an ``UploadFile`` (see ``form()``)."""
        if not callable(fn):
            raise TypeError(f"background() needs a callable, not {type(fn).__name__}")
        if self._background is None:
            self._background = []
        self._background.append((fn, args, kwargs))

    @property
    def bg(self) -> BackgroundAdder:
        """PyLiteFlux's spelling: ``request.bg.add(fn, *args, **kwargs)`` is ``background()``."""
        return BackgroundAdder(self)

    async def form(self, limits: FormLimits | None = None) -> FormData:
        """The body as a form, parsed once and cached.

        ``application/x-www-form-urlencoded`` or ``multipart/form-data`` (415 otherwise).
        Multipart is parsed as it arrives; file parts become ``UploadFile`` objects spooled to
        disk past ``limits.spool_max_bytes``.  Limits (``FormLimits``) answer 413, malformed
        bodies 400.

        The files live as long as the request: the App closes them (deleting their temporary
        files) once the response is done, also when the handler raised.  Background calls of
        the request (``background()``) may still use them: the files are closed after the last
        of those returned.  Anything kept beyond that must be copied first (``UploadFile.save``);
        ``form.close()`` releases them earlier.
        """
        if self._form is None:
            from cyserve.multipart import FormLimits, parse_form
            self._form = await parse_form(self._head.get("content-type"), self.stream(),
                                          limits or FormLimits())
        return self._form

    def _close_form(self) -> None:
        """Close the files of ``form()`` (the App calls this when the request is done)."""
        form = self._form
        if form is not None:
            form.close()

    def replace_body(self, source: Any) -> None:
        """Swap the body for ``source``: ``bytes``, or an object with ``async read() -> bytes``
        (``b""`` at the end) such as a decoding wrapper around the original stream.  For
        middleware (decompression, limits); the handler then reads the replacement."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._body = bytes(source)
            self._body_bytes = self._body
        else:
            if not hasattr(source, "read"):
                raise TypeError("replace_body() needs bytes or an object with async read()")
            self._body = source
            self._body_bytes = None

    @property
    def raw_body(self) -> Any:
        """The body as the core handed it: ``bytes`` or a stream with ``async read()``."""
        return self._body

    async def body(self) -> bytes:
        """The whole body (bounded by the server's ``max_body_bytes``); cached."""
        if self._body_bytes is None:
            parts = []
            while True:
                chunk = await self._body.read()
                if not chunk:
                    break
                parts.append(chunk)
            self._body_bytes = b"".join(parts)
        return self._body_bytes

    async def json(self) -> Any:
        """The body parsed as JSON; 400 when it is not valid JSON."""
        data = await self.body()
        try:
            return _json.loads(data)
        except ValueError as exc:
            raise HTTPError(400, f"request body is not valid JSON: {exc}") from None

    async def stream(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk as it arrives (or the cached body in one piece)."""
        if self._body_bytes is not None:
            if self._body_bytes:
                yield self._body_bytes
            return
        while True:
            chunk = await self._body.read()
            if not chunk:
                return
            yield chunk

    def pull(self) -> AsyncIterator[bytes]:
        """Blazeio's spelling of ``stream()``: ``async for chunk in r.pull()``."""
        return self.stream()

    # ------------------------------------------------------------ Blazeio's imperative response
    async def prepare(self, headers: Any = None, status: int = 200, reason: str = "",
                      encode_resp: bool = True, encode_event_stream: bool = True,
                      **_ignored: Any) -> None:
        """Blazeio's ``await r.prepare(headers, status)``: send the head of a response that the
        handler then writes itself with ``await r.write(chunk)`` and returns None
        (``cyserve.compat.Prepared`` says how headers choose the framing).  ``reason`` and
        Blazeio's other keywords (``server_phrase``) are accepted and ignored."""
        if hasattr(self, "_prepared"):
            raise RuntimeError("prepare() was already called for this request")
        self._prepared = Prepared(self._conn, headers, status, encode_resp, encode_event_stream)

    def write(self, data: Any) -> Awaitable[None]:
        """Blazeio's ``await r.write(chunk)``: a piece of the prepared body; awaiting it waits
        while the client is slow to read (backpressure)."""
        try:
            prepared = self._prepared
        except AttributeError:
            raise RuntimeError("write() needs a response started with prepare()") from None
        return prepared.write(data)

    async def eof(self) -> None:
        """Blazeio's ``await r.eof()``: end the prepared body (returning from the handler does
        too)."""
        try:
            prepared = self._prepared
        except AttributeError:
            raise RuntimeError("eof() needs a response started with prepare()") from None
        await prepared.finish()

    def is_disconnected(self) -> bool:
        return self._conn.stream.is_disconnected()

    async def wait_disconnected(self) -> None:
        """Return when the client goes away."""
        await self._conn.stream.wait_disconnected()

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._head.target}>"


# RFC 6265 §5.4: the user agent sends "name=value" pairs joined by "; ".  Parsed the way browsers
# and servers tolerate in practice: pairs without "=" are skipped, whitespace around names and
# values is dropped, one pair of DQUOTEs around a value is removed (§4.1.1 cookie-value), and a
# value holding "%" is percent-decoded as UTF-8 when that succeeds (the encoding set_cookie uses
# for octets outside cookie-octet), else kept as sent.  The first occurrence of a name wins, as
# user agents send the most specific path first (§5.4 step 2).
def parse_cookie_header(header: str) -> dict[str, str]:
    """``{"name": "value"}`` from a Cookie header value (see the comment above)."""
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, eq, value = pair.partition("=")
        if not eq:
            continue
        name = name.strip()
        if not name or name in cookies:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        cookies[name] = _percent_decoded(value) if "%" in value else value
    return cookies


def _percent_decoded(value: str) -> str:
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:  # not our encoding: keep the value exactly as the client sent it
        return value
