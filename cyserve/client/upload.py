"""Streamed request bodies: sending an async iterator, and Blazeio's ``write()`` style upload
(``Client.stream_request``)."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable, NamedTuple

from cyserve.errors import TransportError
from cyserve.client.response import RequestInfo, Response
from cyserve.client.util import total_deadline, watch_total

__all__ = ["upload", "StreamRequest", "UploadStart"]


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



class UploadStart(NamedTuple):
    """What ``Client`` hands a ``StreamRequest`` once its exchange is open."""

    conn: Any                 # the connection, its request head sent
    waiter: Any               # the future of the response head
    request: RequestInfo
    timeouts: Any             # the ClientTimeouts in force


class StreamRequest:
    """An upload written piece by piece (Blazeio's ``write()``/``eof()`` style).

    The body is the caller's to pace, as a ``stream()`` body is, so the total timeout
    (``ClientTimeouts.total_s``) does not run while it is written: it bounds getting a
    connection (pool wait and connect, from ``async with``) and, afresh from ``finish()``, the
    wait for the response head, the two phases whose length is the server's doing.  Meanwhile
    ``write_s`` bounds each ``write()`` stalled on a server that reads nothing, ``read_s`` the
    silence after the body ended, and the response body is read as a ``stream()`` one is.
    Bound the whole upload with ``asyncio.wait_for`` if needed.

    Made by ``Client.stream_request``, which opens the exchange (``start``) on ``async with``.
    """

    __slots__ = ("_start", "_method", "_limits", "_decode", "_started", "response", "_finished")

    def __init__(self, start: Callable[[], Awaitable[UploadStart]], method: str, limits: Any,
                 decode: bool) -> None:
        self._start = start
        self._method = method
        self._limits = limits
        self._decode = decode
        self._started: UploadStart | None = None
        self.response: Response | None = None
        self._finished = False

    async def __aenter__(self) -> "StreamRequest":
        self._started = await self._start()
        return self

    async def write(self, data: bytes) -> None:
        """Send the next piece; returns once the transport can take more (backpressure)."""
        if self._finished:
            raise RuntimeError("the request body is already finished")
        await self._open().conn.send_body(data)

    async def finish(self) -> Response:
        """End the body and wait for the response head, at most ``total_s`` from now; the body
        is then read from the response."""
        if self.response is not None:
            return self.response
        started = self._open()
        conn = started.conn
        watch: asyncio.TimerHandle | None = None
        try:
            if not self._finished:
                self._finished = True
                conn.end_body()
            watch = watch_total(conn, total_deadline(started.timeouts))
            result = await started.waiter
        except BaseException:
            conn.abort()
            raise
        finally:
            if watch is not None:
                watch.cancel()
        if result is None:
            raise conn.error
        head, body = result
        self.response = Response(head, body, conn, started.request, self._limits, self._decode)
        return self.response

    def _open(self) -> UploadStart:
        if self._started is None:
            raise RuntimeError("use the StreamRequest as `async with client.stream_request(...)`")
        return self._started

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._started is None:
            return
        if exc_type is not None:
            if self.response is None or not self.response.is_complete:
                self._started.conn.abort()
            return
        if self.response is None:
            await self.finish()
        await self.response.aclose()  # type: ignore[union-attr]
