"""Test helpers: a server on 127.0.0.1:0 and a raw client that reads responses through h11
(an independent parser, so the server is never checked by its own codec)."""
from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import pathlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import h11

from cyserve import serve
from cyserve.server import Server


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[Server]:
    """Serve ``app`` on a free port of 127.0.0.1 for the block; shut down gracefully after."""
    server = await serve(app, "127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.shutdown(timeout_s=2.0)


@contextlib.asynccontextmanager
async def listening_core(handler: Any, *, observer: Any = None, ssl: Any = None,
                         on_stream: Any = None) -> AsyncIterator[int]:
    """The core alone on 127.0.0.1 (no App): every request goes to ``handler(conn, head,
    body)``; ``observer`` set on the ``ServerState``; ``on_stream(stream)`` told of each
    connection.  Yields the port; after the block, connections are dropped and the listener
    closed."""
    from cyserve._core.http.server import server_connection
    from cyserve._core.http.state import ServerState
    from cyserve.config import ServerConfig

    loop = asyncio.get_running_loop()
    state = ServerState(handler, ServerConfig(), loop)
    state.observer = observer

    def factory() -> Any:
        stream = server_connection(state)
        if on_stream is not None:
            on_stream(stream)
        return stream

    listener = await loop.create_server(factory, "127.0.0.1", 0, ssl=ssl)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        state.begin_shutdown()
        for stream in list(state.connections):
            stream.abort_now()
        await listener.wait_closed()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    informational: list[int] = field(default_factory=list)
    raw_headers: list[tuple[str, str]] = field(default_factory=list)


class RawClient:
    """A socket client that writes raw bytes and parses responses with h11."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, port: int) -> "RawClient":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, method: str = "GET", target: str = "/", headers: list[tuple[str, str]]
                      | None = None, body: bytes = b"", version: str = "1.1") -> Reply:
        fields = [("Host", "127.0.0.1")] + list(headers or [])
        if body:
            fields.append(("Content-Length", str(len(body))))
        head = f"{method} {target} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
        await self.send(head.encode("latin-1") + b"\r\n" + body)
        return await self.response(method)

    async def response(self, method: str = "GET", timeout_s: float = 5.0) -> Reply:
        """Parse the next response (for a request with ``method``) off the connection."""
        conn = self._h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        # Tell h11 which request this answers (the bytes were sent raw already).
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        informational: list[int] = []
        reply: Reply | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(self.reader.read(65536), timeout_s)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                raw = [(k.decode(), v.decode("latin-1")) for k, v in event.headers.raw_items()]
                reply = Reply(event.status_code, {k.lower(): v for k, v in raw}, b"", informational, raw)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert reply is not None
                reply.body = bytes(body)
                return reply
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before a complete response")

    async def read_until_close(self, timeout_s: float = 5.0) -> bytes:
        return await asyncio.wait_for(self.reader.read(), timeout_s)

    async def is_closed_by_peer(self, timeout_s: float = 3.0) -> bool:
        """True when the server closes the connection within ``timeout_s`` (EOF, nothing sent)."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), timeout_s)
        except asyncio.TimeoutError:
            return False
        except ConnectionError:
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def load_example(name: str) -> Any:
    """``examples/<name>.py`` imported as a fresh module (its ``app`` not yet started)."""
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def fetch(port: int, method: str = "GET", target: str = "/", headers: Any = None,
                body: bytes = b"") -> Reply:
    """One request on a connection of its own, closed after the reply."""
    client = await RawClient.open(port)
    try:
        return await client.request(method, target, headers, body)
    finally:
        await client.close()


async def exchange(port: int, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Send raw bytes, return everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
