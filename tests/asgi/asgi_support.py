"""Helpers for the ASGI adapter's tests: an ASGI app served by ``cyserve.asgi.serve`` on
127.0.0.1:0 for a block, small raw ASGI apps, and a recorder of what an app saw."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Awaitable, Callable

import cyserve.asgi
from cyserve.server import Server

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[Server]:
    """Serve the ASGI ``app`` (or an ``ASGIHost``) on a free port for the block; drain after."""
    server = await cyserve.asgi.serve(app, "127.0.0.1", 0, **options)
    try:
        yield server
    finally:
        await server.shutdown(timeout_s=3.0)


async def read_body(receive: Receive) -> bytes:
    """Every ``http.request`` message's body until ``more_body`` is false."""
    parts = []
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        parts.append(message["body"])
        if not message["more_body"]:
            return b"".join(parts)


async def respond(send: Send, status: int = 200, body: bytes = b"",
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """The common response: one start, one body."""
    await send({"type": "http.response.start", "status": status,
                "headers": headers if headers is not None else [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


class Recorder:
    """Keeps what an app saw (scopes, messages, exceptions), with an event per kind of fact so
    a test can wait for one with a deadline."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.messages: list[Message] = []
        self.errors: list[BaseException] = []
        self._changed = asyncio.Event()

    def note(self, what: Any) -> None:
        if isinstance(what, BaseException):
            self.errors.append(what)
        elif isinstance(what, dict) and "type" in what and what["type"] in (
                "http", "websocket", "lifespan"):
            self.scopes.append(what)
        else:
            self.messages.append(what)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Recorder], bool], timeout_s: float = 5.0) -> None:
        async def watch() -> None:
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(watch(), timeout_s)


async def no_lifespan(scope: dict[str, Any], receive: Receive, send: Send) -> bool:
    """Answer a lifespan scope's startup and shutdown (True), for apps under test that do not
    care about it; False for other scopes."""
    if scope["type"] != "lifespan":
        return False
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return True
