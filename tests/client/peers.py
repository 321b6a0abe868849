"""Servers for the client tests: scripted raw servers (requests read back with h11, an
independent parser, responses written byte for byte), and an HTTP proxy (absolute-form and
CONNECT).  Every task they start is tracked and cancelled on exit."""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable

import h11


@dataclass
class RawServer:
    port: int
    connections: int = 0
    requests: list[tuple[h11.Request, bytes]] = field(default_factory=list)


class Peer:
    """One accepted connection: read requests with h11, write raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 server: RawServer) -> None:
        self.reader = reader
        self.writer = writer
        self.server = server
        self._h11 = h11.Connection(h11.SERVER)

    async def request(self, timeout_s: float = 5.0) -> tuple[h11.Request, bytes] | None:
        conn = self._h11
        if conn.our_state is h11.DONE or conn.our_state is h11.SEND_RESPONSE:
            # We answered with raw bytes h11 never saw: start h11's next cycle by hand.
            conn = self._h11 = h11.Connection(h11.SERVER)
        req = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(self.reader.read(65536), timeout_s)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                req = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert req is not None
                self.server.requests.append((req, bytes(body)))
                return req, bytes(body)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


@contextlib.asynccontextmanager
async def raw_server(handler: Callable[[Peer], Awaitable[None]]) -> AsyncIterator[RawServer]:
    tasks: set[asyncio.Task] = set()
    info = RawServer(0)

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info.connections += 1
        try:
            await handler(Peer(reader, writer, info))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, h11.RemoteProtocolError):
            pass
        finally:
            writer.close()

    def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own tracked task (not start_server's), so cancelling it at exit logs nothing.
        task = asyncio.get_running_loop().create_task(serve_one(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    info.port = server.sockets[0].getsockname()[1]
    try:
        yield info
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def response(status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
             reason: str = "OK") -> bytes:
    fields = list(headers or [])
    if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in fields):
        fields.append(("Content-Length", str(len(body))))
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n"
    return head.encode("latin-1") + body


@dataclass
class ProxyServer:
    port: int
    connects: list[str] = field(default_factory=list)
    forwards: list[str] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def proxy_server() -> AsyncIterator[ProxyServer]:
    """A minimal forward proxy: CONNECT tunnels, and absolute-form GETs forwarded one request per
    upstream connection (``Connection: close`` upstream, the response relayed as is)."""
    tasks: set[asyncio.Task] = set()
    info = ProxyServer(0)

    def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(relay(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_writer = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")
                method, target, _ = line.split(" ")
                headers = dict((k.lower(), v.strip()) for k, _, v in (f.partition(":") for f in fields if f))
                info.auth.append(headers.get("proxy-authorization"))
                if method == "CONNECT":
                    info.connects.append(target)
                    host, port = target.rsplit(":", 1)
                    up_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", int(port))
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    await writer.drain()
                    await asyncio.gather(_pipe(reader, upstream_writer), _pipe(up_reader, writer))
                    return
                info.forwards.append(target)
                from urllib.parse import urlsplit
                url = urlsplit(target)
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                up_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", url.port)
                kept = [f for f in fields if f and not f.lower().startswith(("proxy-", "connection"))]
                path = url.path + (f"?{url.query}" if url.query else "")
                upstream_writer.write(f"{method} {path} HTTP/1.1\r\n".encode() + "\r\n".join(
                    kept + ["Connection: close"]).encode("latin-1") + b"\r\n\r\n" + body)
                data = await up_reader.read()
                upstream_writer.close()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if upstream_writer is not None:
                upstream_writer.close()
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    info.port = server.sockets[0].getsockname()[1]
    try:
        yield info
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def until(predicate: Callable[[], Any], timeout_s: float = 3.0) -> None:
    """Wait until ``predicate()`` is true (polling the loop), or fail."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serving_tls(app: Any, ssl_ctx: Any) -> AsyncIterator[Any]:
    """A cyserve server on 127.0.0.1:0 behind TLS (``serve(ssl=...)``)."""
    from cyserve.server import serve
    server = await serve(app, "127.0.0.1", 0, ssl=ssl_ctx)
    try:
        yield server
    finally:
        await server.shutdown(timeout_s=2.0)
