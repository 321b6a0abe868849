"""Streamed request bodies: sending an async iterator, and Blazeio's ``write()`` style upload
(``Client.stream_request``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator

from cyserve.errors import TransportError
from cyserve.client.response import RequestInfo, Response
from cyserve.client.util import (
    HeadersArg, basic_auth, find_header, header_list, merge_headers, merge_params, remaining,
    seconds, target_of,
)
from cyserve.client.urls import merge_url

if TYPE_CHECKING:
    from cyserve.client import Client

__all__ = ["upload", "StreamRequest"]


async def upload(conn: Any, chunks: AsyncIterator[bytes], waiter: Any) -> None:
    """Send a streamed body.  A server that answers before the body is complete (413, 401)
    wins: sending stops (the connection then closes, its request framing unfinished) and its
    response is returned rather than a write error or timeout."""
    try:
        async for chunk in chunks:
            if waiter.done():
                conn.stop_body()
                return
            await conn.send_body(chunk)
        conn.end_body()
    except TransportError:
        if not (waiter.done() and waiter.result() is not None):
            raise
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()



class StreamRequest:
    """An upload written piece by piece (Blazeio's ``write()``/``eof()`` style)."""

    __slots__ = ("_client", "_method", "_url", "_headers", "_params", "_timeout", "_conn",
                 "_waiter", "response", "_finished")

    def __init__(self, client: Client, method: str, url: str, headers: HeadersArg, params: Any,
                 timeout: Any) -> None:
        self._client = client
        self._method = method.upper()
        self._url = url
        self._headers = headers
        self._params = params
        self._timeout = timeout
        self._conn: Any = None
        self._waiter: Any = None
        self.response: Response | None = None
        self._finished = False

    async def __aenter__(self) -> "StreamRequest":
        client = self._client
        timeouts = client._timeouts(self._timeout)
        deadline = client._deadline(timeouts)
        full = merge_url(client.base_url, self._url, merge_params(client.params, self._params))
        target = target_of(full)
        fields = list(merge_headers(client.headers, header_list(self._headers)))
        auth = client.auth or target.userinfo
        if auth is not None and find_header(fields, "authorization") is None:
            fields.append(("Authorization", basic_auth(*auth)))
        route, request_target, fields = client._address(target, fields)
        declared = find_header(fields, "content-length")
        length = int(declared) if declared is not None else -1
        conn, _ = await client._acquire(route, target.origin, timeouts, deadline, False)
        self._conn = conn
        try:
            self._waiter = conn.start(self._method, request_target, fields, length, length < 0,
                                      None, False, self._method == "HEAD",
                                      seconds(timeouts.read_s), seconds(timeouts.write_s),
                                      remaining(deadline) or 0.0)
        except BaseException:
            conn.abort()
            raise
        self._url = target.url
        self._headers = fields
        return self

    async def write(self, data: bytes) -> None:
        """Send the next piece; returns once the transport can take more (backpressure)."""
        if self._finished:
            raise RuntimeError("the request body is already finished")
        await self._conn.send_body(data)

    async def finish(self) -> Response:
        """End the body and wait for the response head; the body is then read from it."""
        if self.response is not None:
            return self.response
        conn = self._conn
        try:
            if not self._finished:
                self._finished = True
                conn.end_body()
            result = await self._waiter
        except BaseException:
            conn.abort()
            raise
        if result is None:
            raise conn.error
        head, body = result
        self.response = Response(head, body, conn, RequestInfo(self._method, self._url,
                                                               self._headers),
                                 self._client.limits, self._client.decode)
        return self.response

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._conn is None:
            return
        if exc_type is not None:
            if self.response is None or not self.response.is_complete:
                self._conn.abort()
            return
        if self.response is None:
            await self.finish()
        await self.response.aclose()  # type: ignore[union-attr]
