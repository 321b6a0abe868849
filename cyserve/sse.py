"""Server-sent events (WHATWG HTML §9.2): ``SSEResponse`` streams ``ServerSentEvent``s.

One pump task runs the producer and writes each event as one chunk; the response's own task
watches the connection meanwhile: it sends a keep-alive comment whenever nothing was written
for ``ping_interval_s`` (so proxies and clients don't time the stream out), and when the client
leaves it cancels the pump and closes the producer (``aclose``), so the producer's ``finally``
runs at once instead of at its next event.

When the server drains (``Server.shutdown``), the same task is told (``drain_notices``): the
producer is cancelled and closed the same way, an optional last event goes out (a ``retry:``
hint, say), and the stream ends with its terminating chunk, so the client sees a clean end and
reconnects (to another worker) instead of waiting for the grace period to cut it off.  Without
this an SSE stream held every shutdown for its whole grace period (``Timeouts.shutdown_s``): the
core only turns keep-alive off on a busy connection, and nothing told the response.
"""
from __future__ import annotations

import asyncio
import re
from typing import Any, AsyncIterable, Callable

from cyserve._json import dumps
from cyserve.errors import Disconnected
from cyserve.lifecycle import drain_notices
from cyserve.response import BaseResponse, Fields, _fields

__all__ = ["ServerSentEvent", "SSEResponse"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the three line ends of the event stream (§9.2.5)
_PING = b": ping\n\n"


class ServerSentEvent:
    """One event: ``data`` (``str``; other values are sent as JSON; None for no data lines),
    ``event`` (its type), ``id``, ``retry`` (reconnection delay in ms) and ``comment``.

    Multi-line data and comments become one ``data:``/``:`` line per line (§9.2.5), so no value
    can end the event early; ``event`` and ``id`` can't hold line breaks (``ValueError``), nor
    can ``id`` hold NUL (clients would ignore it, §9.2.6).
    """

    __slots__ = ("data", "event", "id", "retry", "comment")

    def __init__(self, data: Any = None, event: str | None = None, id: str | None = None,
                 retry: int | None = None, comment: str | None = None) -> None:
        if event is not None and _LINE_BREAK.search(event):
            raise ValueError(f"SSE event type holds a line break: {event!r}")
        if id is not None and (_LINE_BREAK.search(id) or "\0" in id):
            raise ValueError(f"SSE id holds a line break or NUL: {id!r}")
        if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
            raise ValueError(f"SSE retry must be a non-negative int (milliseconds), not {retry!r}")
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry
        self.comment = comment

    def encode(self, default: Callable[[Any], Any] | None = None) -> bytes:
        """The event on the wire, UTF-8, ending with the blank line that dispatches it."""
        lines: list[str] = []
        if self.comment is not None:
            lines.extend(": " + line for line in _LINE_BREAK.split(self.comment))
        if self.event is not None:
            lines.append("event: " + self.event)
        if self.id is not None:
            lines.append("id: " + self.id)
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        data = self.data
        if data is not None:
            if isinstance(data, (bytes, bytearray)):
                data = bytes(data).decode("utf-8")
            elif not isinstance(data, str):
                data = dumps(data, default).decode("utf-8")
            lines.extend("data: " + line for line in _LINE_BREAK.split(data))
        lines.append("\n")
        return "\n".join(lines).encode("utf-8")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__
                           if getattr(self, name) is not None)
        return f"ServerSentEvent({fields})"


def _encode_item(item: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """A producer's item on the wire: a ``ServerSentEvent``, a dict of its fields, or the data."""
    if isinstance(item, ServerSentEvent):
        return item.encode(default)
    if isinstance(item, dict):
        return ServerSentEvent(**item).encode(default)
    return ServerSentEvent(item).encode(default)


class SSEResponse(BaseResponse):
    """``SSEResponse(content, status=200, headers=None, *, ping_interval_s=15.0, default=None,
    drain_event=None)``.

    ``content`` is an async iterable of ``ServerSentEvent``, dicts of its fields, or plain data
    (``str``, or anything JSON can encode, with ``default`` as the JSON hook).  A keep-alive
    comment goes out after ``ping_interval_s`` without a write (None or 0: never).  The stream
    ends when the producer does; when the client leaves, the producer is cancelled and closed.
    When the server drains, the producer is cancelled and closed too, ``drain_event`` (an item
    as the producer yields, e.g. ``ServerSentEvent(retry=1000)``) is sent if given, and the
    stream ends cleanly.  Sent with ``Content-Type: text/event-stream``, ``Cache-Control: no-cache`` and
    ``X-Accel-Buffering: no`` (nginx would otherwise buffer the stream), unless given.
    """

    __slots__ = ("content", "status", "headers", "content_type", "ping_interval_s", "default",
                 "drain_event")

    def __init__(self, content: AsyncIterable[Any], status: int = 200, headers: Fields = None, *,
                 ping_interval_s: float | None = 15.0,
                 default: Callable[[Any], Any] | None = None, drain_event: Any = None) -> None:
        if not hasattr(content, "__aiter__"):
            raise TypeError("SSEResponse needs an async iterable (an async generator, say)")
        self.content = content
        self.status = status
        self.headers = _fields(headers)
        self.content_type = "text/event-stream"
        self.ping_interval_s = ping_interval_s or None
        self.default = default
        self.drain_event = drain_event
        present = {name.lower() for name, _ in self.headers}
        for name, value in (("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")):
            if name.lower() not in present:
                self.headers.append((name, value))

    async def send(self, conn: Any) -> None:
        loop = asyncio.get_running_loop()
        iterator = self.content.__aiter__()
        conn.start_stream(self.status, self.headers, self.content_type, -1)
        last_write = [loop.time()]
        pump = loop.create_task(self._pump(conn, iterator, last_write, loop))
        # One future per connection, shared: wait on it with asyncio.wait, which never cancels it.
        stream = conn.stream
        gone = stream.wait_disconnected()
        draining = drain_notices.watch(stream)
        interval = self.ping_interval_s
        drained = False
        try:
            while True:
                timeout = None if interval is None else max(0.0, last_write[0] + interval - loop.time())
                done, _ = await asyncio.wait((pump, gone, draining), timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if pump in done:
                    pump.result()  # the producer's error, if any, ends the response uncleanly
                    break
                if gone in done:
                    return
                if draining in done:
                    drained = True  # the server is stopping: end the stream cleanly, below
                    break
                assert interval is not None  # the wait timed out: there is an interval
                if loop.time() - last_write[0] >= interval:
                    last_write[0] = loop.time()
                    conn.write(_PING)  # tiny: no need to wait for the drain
        except Disconnected:
            return
        finally:
            drain_notices.unwatch(stream)
            if not pump.done():
                pump.cancel()
                await asyncio.wait((pump,))
            # Mark the pump's outcome retrieved: raised above when it mattered; otherwise the
            # client is gone (or the server drains) and a producer failing on its cancellation
            # has no one to tell.
            if not pump.cancelled():
                pump.exception()
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        if drained and self.drain_event is not None:
            try:
                await conn.write(_encode_item(self.drain_event, self.default))
            except Disconnected:
                return
        conn.end_stream()

    async def _pump(self, conn: Any, iterator: Any, last_write: list[float],
                    loop: asyncio.AbstractEventLoop) -> None:
        default = self.default
        async for item in iterator:
            last_write[0] = loop.time()
            await conn.write(_encode_item(item, default))
