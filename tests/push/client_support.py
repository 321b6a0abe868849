"""A scripted push server for the client's tests: each connection is handed to a test's script as
a ``Peer`` (the server's end), over TCP (asyncio's ``start_server``) or WebSocket (a cyserve App
whose ``@app.websocket`` route plays the same script).  The script reads what the client sent,
decoded by the codec's server-side ``FrameDecoder`` (framing detected from the first byte on TCP,
from the first message's type on WebSocket, docs/push-protocol.md §2), and writes frames with
``frames.encode``; what the client does is checked by the test, not by cyserve's hub.

A failure inside a script (an assertion, a timeout) is raised again when the ``scripted`` block
ends, so it fails the test.
"""
from __future__ import annotations

import asyncio
import contextlib
import ssl as _ssl
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable

import orjson

from cyserve import App, WebSocket
from cyserve._core.push.frames import (
    FRAMING_BINARY, FRAMING_WS_BINARY, FRAMING_WS_TEXT, KIND_CLOSE, KIND_HELLO,
    KIND_NAMES, KIND_REFUSE, KIND_WELCOME, VERSION, Frame, FrameDecoder, Violation, encode,
)
from cyserve.errors import WebSocketDisconnect
from tests.support import serving

MIB = 1 << 20
# (transport, framing) of every way a client connects: ids for parametrize.
WIRES = ["tcp-binary", "tcp-json", "ws-binary", "ws-json"]


def wire_args(wire: str) -> tuple[str, str]:
    """``("tcp", "binary")`` for ``"tcp-binary"``."""
    transport, framing = wire.split("-")
    return transport, framing


class PeerClosed(Exception):
    """The client closed the connection while the script waited for a frame."""


class TcpIO:
    """A TCP connection's bytes (asyncio streams)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    def decoder(self, first: bytes | str) -> FrameDecoder:
        return FrameDecoder(MIB, None)   # §2: the client's first byte decides

    async def read(self) -> bytes | None:
        return await self._reader.read(65536) or None

    def write(self, data: bytes, framing: int) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    def drop(self) -> None:
        self._writer.transport.abort()

    def buffered(self) -> int:
        return self._writer.transport.get_write_buffer_size()

    async def finish(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)


class WsIO:
    """A WebSocket's messages (the server's ``WebSocket``), one frame each (§13)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    def decoder(self, first: bytes | str) -> FrameDecoder:
        # §2: the type of the client's first message chooses the framing.
        return FrameDecoder(MIB, FRAMING_WS_TEXT if isinstance(first, str) else FRAMING_WS_BINARY)

    async def read(self) -> bytes | str | None:
        try:
            return await self.ws.receive()
        except WebSocketDisconnect:
            return None

    def write(self, data: bytes, framing: int) -> None:
        role = self.ws._role
        if role is not None and not self.ws.closed:
            role.send(data, framing == FRAMING_WS_TEXT)

    def drop(self) -> None:
        assert self.ws._role is not None
        self.ws._role.abort()

    def buffered(self) -> int:
        return self.ws.buffered_bytes

    async def finish(self) -> None:
        if not self.ws.closed:
            with contextlib.suppress(WebSocketDisconnect):
                await asyncio.wait_for(self.ws.close(1000), 2.0)


class Peer:
    """The server's end of one connection.  ``index``: 0 for the first connection of the test,
    1 for the next...  ``hello``: the HELLO's object once ``handshake``/``expect_hello`` ran;
    ``framing``: the client's, once its first bytes arrived."""

    def __init__(self, index: int, io: TcpIO | WsIO) -> None:
        self.index = index
        self.io = io
        self.framing = 0
        self.hello: dict[str, Any] = {}
        self._decoder: FrameDecoder | None = None
        self._frames: list[Frame] = []

    @property
    def binary(self) -> bool:
        return self.framing in (FRAMING_BINARY, FRAMING_WS_BINARY)

    def drop(self) -> None:
        """Close the connection without a CLOSE frame (a lost connection, §9)."""
        self.io.drop()

    def buffered(self) -> int:
        """Bytes this side wrote that the client has not taken yet."""
        return self.io.buffered()

    def write(self, data: bytes) -> None:
        self.io.write(data, self.framing)

    async def recv(self, timeout_s: float = 5.0) -> Frame:
        """The next frame the client sent; ``PeerClosed`` once it closed, AssertionError for a
        frame the server's decoder refuses."""
        async def next_frame() -> Frame:
            while not self._frames:
                data = await self.io.read()
                if data is None:
                    raise PeerClosed()
                if self._decoder is None:
                    self._decoder = self.io.decoder(data)
                for item in self._decoder.feed(data):
                    assert not isinstance(item, Violation), f"the client broke the protocol: {item}"
                    self._frames.append(item)
                self.framing = self._decoder.framing
            return self._frames.pop(0)
        return await asyncio.wait_for(next_frame(), timeout_s)

    async def expect(self, kind: int, timeout_s: float = 5.0) -> Frame:
        frame = await self.recv(timeout_s)
        assert frame.kind == kind, f"expected {KIND_NAMES[kind]}, got {frame}"
        return frame

    async def closed(self, timeout_s: float = 5.0) -> list[Frame]:
        """Wait until the client closes the connection; the frames it sent before.  A CLOSE
        ``normal`` from the client is answered as a server does (§9: CLOSE ``normal``, then the
        connection is closed)."""
        frames = []
        try:
            while True:
                frame = await self.recv(timeout_s)
                frames.append(frame)
                if frame.kind == KIND_CLOSE and frame.name == "normal":
                    self.send(KIND_CLOSE, 0, "normal", "")
                    await self.io.finish()
        except PeerClosed:
            return frames

    def send(self, kind: int, id: int = 0, name: str = "", payload: object = None,
             flags: int = 0) -> None:
        self.write(encode(kind, id, name, payload, flags, self.framing))

    def send_data(self, kind: int, id: int, name: str, value: object, flags: int = 0) -> None:
        """CALL/REPLY/PUSH data: JSON-encoded in the binary framings (the json codec), the value
        itself in the JSON framings; bytes as they are."""
        if self.binary and not isinstance(value, bytes):
            value = orjson.dumps(value)
        self.send(kind, id, name, value, flags)

    async def expect_hello(self) -> dict[str, Any]:
        frame = await self.expect(KIND_HELLO)
        assert frame.name == VERSION
        assert isinstance(frame.payload, dict)
        self.hello = frame.payload
        return frame.payload

    def welcome(self, client_id: str = "client-0", *, token: str | None = None,
                resumed: bool = False, next_seq: int = 1, **overrides: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "client_id": client_id, "resume_token": token or f"token-{self.index}",
            "codec": self.hello.get("codec", "json"), "resumed": resumed, "next_seq": next_seq,
            "heartbeat_s": 20, "idle_timeout_s": 50, "max_frame_bytes": MIB,
            "resume_window_s": 60,
        }
        obj.update(overrides)
        self.send(KIND_WELCOME, 0, VERSION, obj)
        return obj

    async def handshake(self, client_id: str = "client-0", **welcome: Any) -> dict[str, Any]:
        """Read the HELLO, answer WELCOME (``welcome`` overrides its keys); the HELLO's object."""
        hello = await self.expect_hello()
        self.welcome(client_id, **welcome)
        return hello

    async def refuse(self, code: str, text: str = "") -> None:
        await self.expect_hello()
        self.send(KIND_REFUSE, 0, code, text)


Script = Callable[[Peer], Awaitable[None]]


@dataclass
class Scripted:
    """What a ``scripted`` block yields: the URL to connect to and the peers seen so far."""
    url: str
    peers: list[Peer] = field(default_factory=list)
    subprotocols: list[list[str]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def scripted(transport: str, script: Script, *, path: str = "/push",
                   ssl: _ssl.SSLContext | None = None) -> AsyncIterator[Scripted]:
    """A server on 127.0.0.1:0 that runs ``script(peer)`` for every connection (``peer.index``
    tells them apart); ``ssl``: TLS on the TCP listener.  Script failures are raised at the end
    of the block."""
    failures: list[BaseException] = []
    tasks: set[asyncio.Task[None]] = set()

    async def run(peer: Peer) -> None:
        try:
            await script(peer)
        except (asyncio.CancelledError, PeerClosed):
            pass
        except BaseException as exc:   # noqa: BLE001 - reported at the end of the block
            failures.append(exc)
        finally:
            await peer.io.finish()

    if transport == "tcp":
        async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = Peer(len(state.peers), TcpIO(reader, writer))
            state.peers.append(peer)
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await run(peer)
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(on_tcp, "127.0.0.1", 0, ssl=ssl)
        port = server.sockets[0].getsockname()[1]
        state = Scripted(f"tcp://127.0.0.1:{port}")
        try:
            yield state
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.wait(list(tasks), timeout=3.0)
            await asyncio.wait_for(server.wait_closed(), 3.0)
    else:
        app = App()

        @app.websocket(path)
        async def on_ws(ws: WebSocket) -> None:
            offered = list(ws.subprotocols)
            state.subprotocols.append(offered)
            await ws.accept(subprotocol="cyserve-push.1" if "cyserve-push.1" in offered else None)
            peer = Peer(len(state.peers), WsIO(ws))
            state.peers.append(peer)
            await run(peer)

        async with serving(app) as http:
            state = Scripted(f"ws://127.0.0.1:{http.port}{path}")
            yield state
    if failures:
        raise failures[0]
