"""Streamed request bodies: sending an async iterator, and Blazeio's ``write()`` style upload
(``Client.stream_request``)."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator

from cyserve.errors import TransportError
from cyserve.client.response import RequestInfo, Response
from cyserve.client.util import (
    HeadersArg, basic_auth, find_header, header_list, merge_headers, merge_params, seconds,
    target_of, watch_total,
)
from cyserve.client.urls import merge_url

if TYPE_CHECKING:
    from cyserve.client import Client

__all__ = ["upload", "StreamRequest"]


async def upload(conn: Any, chunks: AsyncIterator[bytes], waiter: Any) -> None:
    """Send a streamed body.  A server that answers before the body is complete (413, 401)
    wins: sending stops (the connection then closes, its request framing unfinished) and its
    response is returned rather than a write error or timeout.

    The total timeout covers this sending (``ClientTimeouts.total_s``: request() and stream()
    bound the whole exchange up to the head): the body is pulled from ``chunks`` as fast as the
    server takes it.  A body whose pace is the caller's belongs in ``StreamRequest``, whose
    total leaves it out."""
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
    """An upload written piece by piece (Blazeio's ``write()``/``eof()`` style).

    The body is the caller's to pace, as a ``stream()`` body is, so the total timeout
    (``ClientTimeouts.total_s``) does not run while it is written: it bounds getting a
    connection (pool wait and connect, from ``async with``) and, afresh from ``finish()``, the
    wait for the response head, the two phases whose length is the server's doing.  Meanwhile
    ``write_s`` bounds each ``write()`` stalled on a server that reads nothing, ``read_s`` the
    silence after the body ended, and the response body is read as a ``stream()`` one is.
    Bound the whole upload with ``asyncio.wait_for`` if needed.
    """

    __slots__ = ("_client", "_method", "_url", "_headers", "_params", "_timeout", "_timeouts",
                 "_conn", "_waiter", "response", "_finished")

    def __init__(self, client: Client, method: str, url: str, headers: HeadersArg, params: Any,
                 timeout: Any) -> None:
        self._client = client
        self._method = method.upper()
        self._url = url
        self._headers = headers
        self._params = params
        self._timeout = timeout
        self._timeouts: Any = None
        self._conn: Any = None
        self._waiter: Any = None
        self.response: Response | None = None
        self._finished = False

    async def __aenter__(self) -> "StreamRequest":
        client = self._client
        timeouts = self._timeouts = client._timeouts(self._timeout)
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
            # No total for the core (0): its deadline would run until the response body's last
            # byte, across the caller's writes; finish() bounds the wait for the head instead.
            self._waiter = conn.start(self._method, request_target, fields, length, length < 0,
                                      None, False, self._method == "HEAD",
                                      seconds(timeouts.read_s), seconds(timeouts.write_s), 0.0)
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
        """End the body and wait for the response head, at most ``total_s`` from now; the body
        is then read from the response."""
        if self.response is not None:
            return self.response
        conn = self._conn
        watch: asyncio.TimerHandle | None = None
        try:
            if not self._finished:
                self._finished = True
                conn.end_body()
            watch = watch_total(conn, self._client._deadline(self._timeouts))
            result = await self._waiter
        except BaseException:
            conn.abort()
            raise
        finally:
            if watch is not None:
                watch.cancel()
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
