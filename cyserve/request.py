"""Request: a lazy view over the core's parsed head plus access to the body."""
from __future__ import annotations

from typing import Any, AsyncIterator
from urllib.parse import unquote

from cyserve import _json
from cyserve.datastructures import Headers, QueryParams
from cyserve.errors import HTTPError

__all__ = ["Request"]


class Request:
    """One HTTP request as a handler sees it.

    Nothing is decoded until asked: ``headers``, ``query`` and ``path`` build Python objects on
    first use.  The body is either already complete (``bytes``) or a stream the core feeds, with
    reading paused and resumed on the server's water marks.
    """

    __slots__ = ("_conn", "_head", "_body", "_body_bytes", "_path", "_query", "_headers",
                 "path_params", "state")

    def __init__(self, conn: Any, head: Any, body: Any) -> None:
        self._conn = conn
        self._head = head
        self._body = body
        self._body_bytes: bytes | None = body if type(body) is bytes else None
        self._path: str | None = None
        self._query: QueryParams | None = None
        self._headers: Headers | None = None
        self.path_params: dict[str, Any] = {}
        self.state: dict[str, Any] = {}

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
        """The peer's (host, port)."""
        peer = self._conn.peername
        return (peer[0], peer[1]) if peer else None

    @property
    def content_length(self) -> int | None:
        length = self._head.content_length
        return None if length < 0 else length

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

    def is_disconnected(self) -> bool:
        return self._conn.is_disconnected()

    async def wait_disconnected(self) -> None:
        """Return when the client goes away."""
        await self._conn.wait_disconnected()

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._head.target}>"
