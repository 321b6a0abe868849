"""One HTTP request and response of an ASGI app over the core's server role (``conn``).

``HTTPCycle`` is the per-request object: its bound ``receive`` and ``send`` are what the app is
called with.  It owns the response's state; the core owns the connection's (keep-alive, framing
on the wire, backpressure).

States of the response (``phase``), one way only::

    IDLE --start--> STARTED --body, more_body false--> DONE        (one conn.respond: one write)
                       |--body, more_body true / pathsend--> STREAMING --last body--> DONE
                       |                                          \\--(trailers)--> TRAILERS --> DONE
    any --a broken promise (Content-Length)--> FAILED

``http.response.start`` is held until the first body message, so the common response (start,
then one body) leaves as one ``conn.respond``: head and body in one write.  A ``content-length``
the app set frames the body (RFC 9112 §6.3: never silently chunked); a body longer or shorter
than it is a ``RuntimeError`` raised into the app, and the connection closes (the core answers
500 when nothing went out, else cuts the response short).  A second start, or any message after
the end, is a ``RuntimeError``.  A response never started becomes the core's 500 (logged).

The request body: a body the core handed up whole is one ``http.request`` message; a streamed
one (``BodyStream``) is read chunk by chunk as the app asks, so the core's read backpressure and
``100 Continue`` (sent on the first read, RFC 9110 §10.1.1) apply unchanged.  Once the body was
delivered, ``receive()`` waits for the client to leave, or for the response to end, and returns
``http.disconnect``; a client that leaves mid-body is ``http.disconnect`` at once.  A body the
core refused (too large, malformed chunking, too slow: a ``ProtocolError``) is ``http.disconnect``
to the app; the core then answers it with its own status (413, 400, 408) when no response went
out.  ``send()`` on a connection that is gone raises ``ConnectionResetError``, an ``OSError``, as
ASGI 2.4 asks (apps stop streaming on it).
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Iterable

from cyserve._core.http.asgi import declared_length, end_with_trailers
from cyserve._core.http.body import BodyStream
from cyserve.errors import Disconnected, ProtocolError
from cyserve.files import _OpenFile

__all__ = ["HTTPCycle", "merged_fields", "run_http"]

Message = dict[str, Any]

_IDLE, _STARTED, _STREAMING, _TRAILERS, _DONE, _FAILED = range(6)
_FILE_CHUNK_BYTES = 65536
_get_running_loop = asyncio.get_running_loop


def _gone(exc: BaseException | None = None) -> ConnectionResetError:
    error = ConnectionResetError("the client closed the connection")
    if exc is not None:
        error.__cause__ = exc
    return error


class HTTPCycle:
    """One request's ``receive`` and ``send`` (see the module docstring).

    ``extra``: fields added to the response unless the app set a field of that name (the
    command line's ``--header``, the mounting App's middleware); ``None`` for none.
    ``on_start``: called with the status when the response head is decided (``App.mount``'s
    response object learns its status there), or None.
    """

    __slots__ = ("conn", "body", "phase", "status", "fields", "length", "left", "trailers",
                 "trailer_fields", "head_request", "offered_trailers", "extra", "failure",
                 "_waiter", "on_start")

    def __init__(self, conn: Any, body: Any, head_request: bool, offered_trailers: bool,
                 extra: list[tuple[Any, Any]] | None = None,
                 on_start: Callable[[int], None] | None = None) -> None:
        self.conn = conn
        #: bytes not yet delivered, a stream still being read, or None once all was delivered.
        self.body: Any = body
        self.phase = _IDLE
        self.status = 0
        self.fields: Any = None
        self.length = -1                # the Content-Length the app declared, or -1
        self.left = -1                  # bytes still owed to it while streaming, or -1
        self.trailers = False
        self.trailer_fields: list[Any] | None = None
        self.head_request = head_request
        self.offered_trailers = offered_trailers
        self.extra = extra
        #: What broke the exchange: the request body's ProtocolError, or the app's broken
        #: promise; ``finish``/``failed`` raise it for the core to answer or close.
        self.failure: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.on_start = on_start

    # ------------------------------------------------------------------ receive
    async def receive(self) -> Message:
        body = self.body
        if body is None:
            # Everything was delivered: the next event is the client leaving or the response
            # ending (after which there is nobody to tell anything).
            if self.phase < _DONE:
                await self._wait_end()
            return {"type": "http.disconnect"}
        if type(body) is bytes:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": False}
        try:
            chunk = await body.read()
        except Disconnected:
            self.body = None
            return {"type": "http.disconnect"}
        except ProtocolError as exc:
            self.body = None
            self.failure = exc
            return {"type": "http.disconnect"}
        if not chunk:
            self.body = None
            return {"type": "http.request", "body": b"", "more_body": False}
        more = True
        if type(body) is BodyStream and body.eof and body.buffered == 0:
            self.body = None   # that was the last of it: say so now, saving the app a call
            more = False
        return {"type": "http.request", "body": chunk, "more_body": more}

    async def _wait_end(self) -> None:
        disconnected = self.conn.stream.wait_disconnected()
        if disconnected.done():
            return
        waiter = self._waiter = _get_running_loop().create_future()
        disconnected.add_done_callback(self._wake)
        try:
            await waiter
        finally:
            self._waiter = None
            disconnected.remove_done_callback(self._wake)

    def _wake(self, _: Any = None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------ send
    async def send(self, message: Message) -> None:
        kind = message["type"]
        phase = self.phase
        if kind == "http.response.body":
            if phase == _STARTED:
                if not message.get("more_body", False) and not self.trailers:
                    self._respond(message.get("body", b""))  # the common case: one write
                    return
                self._start(self.length)
            elif phase != _STREAMING:
                raise self._unexpected(kind)
            await self._write(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.start":
            if phase != _IDLE:
                raise self._unexpected(kind)
            self._started(message)
        elif kind == "http.response.pathsend":
            if phase != _STARTED:
                raise self._unexpected(kind)
            await self._send_file(message["path"])
        elif kind == "http.response.trailers":
            if phase != _TRAILERS:
                raise self._unexpected(kind)
            self._add_trailers(message)
        else:
            raise self._unexpected(kind)

    def _unexpected(self, kind: Any) -> BaseException:
        phase = self.phase
        if self.failure is not None and phase != _IDLE or phase == _FAILED:
            return (_gone() if isinstance(self.failure, (Disconnected, ProtocolError))
                    else RuntimeError(f"ASGI message {kind!r} after the response failed: "
                                      f"{self.failure}"))
        if phase == _IDLE:
            return RuntimeError(f"expected ASGI message 'http.response.start', got {kind!r}")
        if phase == _DONE:
            return RuntimeError(f"ASGI message {kind!r} after the response was complete")
        if kind == "http.response.start":
            return RuntimeError("a second 'http.response.start' for one request")
        if phase == _TRAILERS:
            return RuntimeError(f"expected ASGI message 'http.response.trailers', got {kind!r}")
        return RuntimeError(f"unexpected ASGI message {kind!r} while sending the response body")

    def _started(self, message: Message) -> None:
        if self.failure is not None:
            raise _gone(self.failure)  # the request was refused: the core answers it
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 599:
            # RFC 9110 §15.2: interim (1xx) responses are the server's, not an ASGI start.
            raise ValueError(f"http.response.start needs a final status (200-599), got {status!r}")
        fields = message.get("headers")
        if fields is None:
            fields = []
        elif type(fields) is not list:
            fields = list(fields)
        self.length = declared_length(fields)
        extra = self.extra
        if extra:
            fields = merged_fields(fields, extra)
        self.status = status
        self.fields = fields
        self.trailers = bool(message.get("trailers", False))
        self.phase = _STARTED
        if self.on_start is not None:
            self.on_start(status)

    def _respond(self, body: Any) -> None:
        """The whole response: head and body in one write."""
        if type(body) is not bytes:
            body = bytes(body)
        length = self.length
        conn = self.conn
        try:
            if length < 0:
                conn.respond(self.status, self.fields, body, None)
            elif self.head_request:
                # RFC 9110 §9.3.2: HEAD answers the GET's Content-Length, whatever body the app
                # sent (none, or the GET's, which the core does not send).
                conn.start_stream(self.status, self.fields, None, length)
                conn.end_stream()
            elif len(body) != length:
                self._broken(f"response content {'longer' if len(body) > length else 'shorter'} "
                             f"than its Content-Length ({len(body)} bytes, {length} declared)")
            else:
                conn.respond(self.status, self.fields, body, None)
        except Disconnected as exc:
            self.phase = _DONE
            raise _gone(exc) from None
        self.phase = _DONE
        self._wake()

    def _start(self, length: int) -> None:
        try:
            self.conn.start_stream(self.status, self.fields, None, length)
        except Disconnected as exc:
            self.phase = _DONE
            raise _gone(exc) from None
        # A HEAD response's body is never sent (the core drops it), so nothing is counted.
        self.left = -1 if self.head_request else length
        self.phase = _STREAMING

    async def _write(self, body: Any, more: bool) -> None:
        conn = self.conn
        if body:
            if type(body) is not bytes:
                body = bytes(body)
            left = self.left
            if left >= 0:
                if len(body) > left:
                    self._broken(f"response content longer than its Content-Length "
                                 f"({len(body) - left} bytes too many)")
                self.left = left - len(body)
            try:
                await conn.write(body)
            except Disconnected as exc:
                self.phase = _DONE
                raise _gone(exc) from None
        if not more:
            if self.left > 0:
                self._broken(f"response content shorter than its Content-Length "
                             f"({self.left} bytes missing)")
            if self.trailers:
                self.phase = _TRAILERS
                self.trailer_fields = []
                return
            try:
                conn.end_stream()
            except Disconnected as exc:
                self.phase = _DONE
                raise _gone(exc) from None
            self.phase = _DONE
            self._wake()

    def _add_trailers(self, message: Message) -> None:
        fields = self.trailer_fields
        assert fields is not None
        fields.extend(message.get("headers", ()))
        if message.get("more_trailers", False):
            return
        try:
            if self.offered_trailers:
                end_with_trailers(self.conn, fields)
            else:
                # The client did not say it reads trailers (no TE: trailers): the section is
                # optional metadata, left out (RFC 9110 §6.5).
                self.conn.end_stream()
        except Disconnected as exc:
            self.phase = _DONE
            raise _gone(exc) from None
        self.phase = _DONE
        self._wake()

    async def _send_file(self, path: str) -> None:
        """``http.response.pathsend``: the file at ``path`` as the body, read off the loop in
        chunks with write backpressure (cyserve.files' reader)."""
        loop = _get_running_loop()
        file = await _OpenFile.open(loop, path)
        try:
            size = file.stat.st_size
            length = self.length if self.length >= 0 else size
            self._start(length)
            if not self.head_request:
                offset = 0
                while offset < length:
                    data = await file.read(loop, min(_FILE_CHUNK_BYTES, length - offset), offset)
                    if not data:
                        break  # the file shrank: the short body is reported below
                    await self._write(data, True)
                    offset += len(data)
            await self._write(b"", False)
        finally:
            file.close()

    def _broken(self, why: str) -> None:
        """The app broke its response's framing: fail the exchange (the connection closes)."""
        self.phase = _FAILED
        error = RuntimeError(why)
        self.failure = error
        raise error

    # ------------------------------------------------------------------ the app's end
    def finish(self) -> None:
        """The app returned: raise what the core must answer (the refused body's ProtocolError),
        or a RuntimeError when the response is not complete (500 when nothing was sent, else the
        connection closes)."""
        failure = self.failure
        if failure is not None:
            if isinstance(failure, ProtocolError) and self.phase == _IDLE:
                raise failure
            if self.phase == _FAILED:
                raise RuntimeError(f"the ASGI app broke its response: {failure}")
        phase = self.phase
        if phase == _DONE or self.conn.stream.closing:
            return
        if phase == _FAILED:
            raise RuntimeError("the ASGI app broke its response")
        if phase == _IDLE:
            raise RuntimeError("the ASGI app returned without starting a response")
        raise RuntimeError("the ASGI app returned without completing its response")

    def failed(self, exc: BaseException) -> None:
        """The app raised ``exc``: when the request body was refused (and nothing was sent),
        raise that ProtocolError instead, for the core to answer with its status."""
        failure = self.failure
        if (isinstance(failure, ProtocolError) and self.phase == _IDLE
                and not isinstance(exc, asyncio.CancelledError)):
            raise failure from exc


def merged_fields(fields: list[Any], extra: Iterable[tuple[Any, Any]]) -> list[Any]:
    """``fields`` plus each ``extra`` field whose name the app did not set."""
    names = {bytes(name).lower() if not isinstance(name, str) else name.lower().encode("latin-1")
             for name, _ in fields}
    added = [pair for pair in extra
             if (pair[0].lower().encode("latin-1") if isinstance(pair[0], str)
                 else bytes(pair[0]).lower()) not in names]
    return fields + added if added else fields


async def run_http(app: Callable[..., Awaitable[None]], scope: dict[str, Any], cycle: HTTPCycle) -> None:
    """Call ``app`` for one HTTP request and hand the core what it must answer or close."""
    try:
        await app(scope, cycle.receive, cycle.send)
    except BaseException as exc:
        cycle.failed(exc)
        raise
    cycle.finish()
