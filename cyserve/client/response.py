"""The client's Response: status, headers, and the body read whole or streamed.

The body is what the core handed up: ``bytes`` when it was already complete, else the core's
``BodyStream``, whose reads resume the socket below its low water mark (a slow consumer pauses
reading; nothing is buffered without bound).  The connection went back to the pool the moment
the last body byte arrived; closing a response whose body did not arrive in full closes its
connection instead (its framing is unfinished).
"""
from __future__ import annotations

import re
from typing import Any, AsyncGenerator, AsyncIterator

from cyserve import _json
from cyserve.client.decompress import make_decoder
from cyserve.errors import DecodingError, HTTPStatusError, ResponseTooLarge
from cyserve.client.sse import ServerSentEvent, SSEDecoder
from cyserve.datastructures import Headers

__all__ = ["Response", "RequestInfo"]

_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([\w.:-]+)", re.I)


class RequestInfo:
    """What was sent for one hop: ``method``, ``url`` and ``headers`` (name, value) pairs."""

    __slots__ = ("method", "url", "headers")

    def __init__(self, method: str, url: str, headers: list[tuple[str, str]]) -> None:
        self.method = method
        self.url = url
        self.headers = headers

    def __repr__(self) -> str:
        return f"<RequestInfo {self.method} {self.url}>"


class Response:
    """One HTTP response.  ``await read()``/``text()``/``json()`` buffer the body (bounded by
    ``max_body_bytes``); ``iter_bytes()`` streams it decoded, ``iter_raw()`` as received."""

    __slots__ = ("status", "url", "request", "history", "_head", "_headers", "_body", "_conn",
                 "_content", "_limits", "_streamed", "_closed", "_decode")

    def __init__(self, head: Any, body: Any, conn: Any, request: RequestInfo, limits: Any,
                 decode: bool = True) -> None:
        self.status: int = head.status
        self.url: str = request.url
        self.request = request
        self.history: list[Response] = []
        self._head = head
        self._headers: Headers | None = None
        self._body = body
        self._conn = conn
        self._content: bytes | None = None
        self._limits = limits
        self._streamed = False
        self._closed = False
        self._decode = decode

    # ------------------------------------------------------------------ metadata
    @property
    def headers(self) -> Headers:
        """Case-insensitive, multi-valued (``headers.getlist("set-cookie")``)."""
        if self._headers is None:
            self._headers = Headers(self._head)
        return self._headers

    @property
    def status_code(self) -> int:
        """The same as ``status`` (the name httpx and requests use)."""
        return self.status

    @property
    def reason(self) -> str:
        reason: str = self._head.reason
        return reason

    @property
    def http_version(self) -> str:
        return "HTTP/1.1" if self._head.version == 11 else "HTTP/1.0"

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    ok = is_success

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and self._head.get("location") is not None

    @property
    def charset(self) -> str | None:
        match = _CHARSET.search(self._head.get("content-type") or "")
        return match.group(1) if match else None

    @property
    def content(self) -> bytes:
        """The body, once ``await read()`` ran."""
        if self._content is None:
            raise RuntimeError("the body was not read yet: await response.read() first")
        return self._content

    @property
    def content_length(self) -> int | None:
        """The body's declared Content-Length, or None (chunked, until close, no body)."""
        length = self._head.content_length
        return None if length < 0 else length

    def abort(self, exc: BaseException | None = None) -> None:
        """Drop the connection now; a body still being read fails with ``exc``."""
        self._closed = True
        self._conn.abort(exc)

    @property
    def is_complete(self) -> bool:
        """The whole body has arrived (it may still wait in the stream for the reader)."""
        body = self._body
        return type(body) is bytes or body.eof

    def raise_for_status(self) -> "Response":
        """Raise ``HTTPStatusError`` for a 4xx or 5xx response; return ``self`` otherwise."""
        if self.status >= 400:
            kind = "client error" if self.status < 500 else "server error"
            raise HTTPStatusError(f"{self.status} {self.reason} ({kind}) for "
                                  f"{self.request.method} {self.url}", self)
        return self

    # ------------------------------------------------------------------ body
    async def iter_raw(self) -> AsyncGenerator[bytes, None]:
        """The body as received (still content-coded), chunk by chunk, with backpressure."""
        if self._streamed:
            raise RuntimeError("the body was already consumed")
        self._streamed = True
        body = self._body
        try:
            if type(body) is bytes:
                if body:
                    yield body
                return
            while True:
                chunk = await body.read()
                if not chunk:
                    return
                yield chunk
        finally:
            await self.aclose()

    async def iter_bytes(self) -> AsyncGenerator[bytes, None]:
        """The body decoded (gzip, deflate, br), chunk by chunk, with backpressure."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        decoder = make_decoder(self._head.get("content-encoding"),
                               self._limits.max_decoded_bytes) if self._decode else None
        raw = self.iter_raw()
        try:
            if decoder is None:
                async for chunk in raw:
                    yield chunk
                return
            async for chunk in raw:
                for piece in decoder.decode(chunk):
                    yield piece
            for piece in decoder.flush():
                yield piece
        finally:
            await raw.aclose()

    async def read(self) -> bytes:
        """The whole decoded body (cached); ``ResponseTooLarge`` past ``max_body_bytes``."""
        if self._content is not None:
            return self._content
        body = self._body
        if type(body) is bytes and not (self._decode and self._head.get("content-encoding")):
            self._streamed = True
            self._content = body
            return body
        limit = self._limits.max_body_bytes
        length = self._head.content_length
        if length > limit:
            await self.aclose()
            raise ResponseTooLarge(f"the response body ({length} bytes) passes max_body_bytes "
                                   f"({limit})")
        parts = []
        total = 0
        stream = self.iter_bytes()
        try:
            async for chunk in stream:
                total += len(chunk)
                if total > limit:
                    raise ResponseTooLarge(f"the response body passes max_body_bytes ({limit})")
                parts.append(chunk)
        finally:
            await stream.aclose()
        self._content = b"".join(parts)
        return self._content

    async def text(self, encoding: str | None = None) -> str:
        """The body decoded with ``encoding``, else the Content-Type charset, else UTF-8."""
        data = await self.read()
        return data.decode(encoding or self.charset or "utf-8", errors="replace")

    async def json(self) -> Any:
        data = await self.read()
        try:
            return _json.loads(data)
        except ValueError as exc:
            raise DecodingError(f"the response body is not valid JSON: {exc}") from None

    async def iter_text(self, encoding: str | None = None) -> AsyncIterator[str]:
        import codecs
        decoder = codecs.getincrementaldecoder(encoding or self.charset or "utf-8")("replace")
        async for chunk in self.iter_bytes():
            text = decoder.decode(chunk)
            if text:
                yield text
        tail = decoder.decode(b"", True)
        if tail:
            yield tail

    async def iter_lines(self) -> AsyncIterator[str]:
        pending = ""
        async for text in self.iter_text():
            pending += text
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line.rstrip("\r")
        if pending:
            yield pending.rstrip("\r")

    async def iter_events(self) -> AsyncIterator[ServerSentEvent]:
        """Server-sent events parsed from a ``text/event-stream`` body, as they arrive."""
        decoder = SSEDecoder()
        async for chunk in self.iter_bytes():
            for event in decoder.feed(chunk):
                yield event

    async def aclose(self) -> None:
        """Done with the body: a connection whose body did not fully arrive is closed."""
        if self._closed:
            return
        self._closed = True
        body = self._body
        if type(body) is not bytes and not body.eof:
            self._conn.abort()

    async def __aenter__(self) -> "Response":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<Response [{self.status} {self.reason}]>"
