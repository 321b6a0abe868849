"""Helpers of the hub and connection tests: a hub served on real sockets of 127.0.0.1 (a cyserve
App whose WebSocket route is ``hub.serve_websocket``, and ``hub.listen`` for TCP), and a client
speaking cyserve-push/1 frames over either transport.

The client encodes with ``frames.encode`` and decodes with a client-side ``FrameDecoder`` (the
codec the frame tests check against the document), over the ``websockets`` library (a WebSocket
client nobody here wrote) or a plain asyncio stream (TCP).
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import orjson
import websockets
from websockets.exceptions import ConnectionClosed

from cyserve import App
from cyserve._core.push.frames import (
    FLAG_ACK_REQUESTED, FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY, FRAMING_WS_TEXT,
    KIND_ACK, KIND_CALL, KIND_CLOSE, KIND_GAP, KIND_HELLO, KIND_PING, KIND_PONG, KIND_PUSH,
    VERSION, Frame, FrameDecoder, Violation, encode,
)
from cyserve.push.hub import Hub
from cyserve.server.serve import serve

__all__ = ["PushClient", "Served", "TRANSPORTS", "serving_hub", "wait_until"]

#: The four ways a client can speak: (transport, framing) as test ids.
TRANSPORTS = ("ws-binary", "ws-text", "tcp-binary", "tcp-json")
TIMEOUT_S = 5.0


async def wait_until(predicate: Callable[[], Any], timeout_s: float = TIMEOUT_S) -> None:
    """Poll ``predicate`` every 5 ms until it is true (AssertionError after ``timeout_s``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out waiting for a condition"
        await asyncio.sleep(0.005)


@dataclass
class Served:
    hub: Hub
    ws_port: int
    tcp_port: int

    async def client(self, transport: str, **options: Any) -> "PushClient":
        """A connected client: ``transport`` is one of ``TRANSPORTS``."""
        if transport.startswith("ws-"):
            return await PushClient.websocket(self.ws_port, text=transport == "ws-text", **options)
        return await PushClient.tcp(self.tcp_port, json_lines=transport == "tcp-json", **options)

    async def session(self, transport: str, credentials: Any = None, **hello: Any) -> "PushClient":
        """A client past its WELCOME (``client.welcome`` holds its data)."""
        client = await self.client(transport)
        frame = await client.hello(credentials, **hello)
        assert frame.name == VERSION, frame
        return client


@contextlib.asynccontextmanager
async def serving_hub(hub: Hub, setup: Callable[[App], None] | None = None, *,
                      grace_s: float = 2.0) -> AsyncIterator[Served]:
    """``hub`` started and served on 127.0.0.1 (WebSocket at ``/push``, and TCP); stopped
    (``hub.stop(grace_s)``: a node sharing its broker waits that long for sessions left to move)
    and shut down after the block."""
    app = App()

    @app.websocket("/push")
    async def push(ws: Any) -> None:
        await hub.serve_websocket(ws)

    if setup is not None:
        setup(app)
    await hub.start()
    server = await serve(app, "127.0.0.1", 0)
    listener = await hub.listen()
    try:
        port = server.port
        assert port is not None
        yield Served(hub, port, listener.sockets[0].getsockname()[1])
    finally:
        listener.close()
        await hub.stop(grace_s)
        await server.shutdown(timeout_s=2.0)
        await listener.wait_closed()


async def _connected(port: int, rcvbuf: int | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)),
                               TIMEOUT_S)
    except BaseException:
        sock.close()
        raise
    return sock


class PushClient:
    """One client connection: ``send`` frames, ``recv`` the server's (a ``Frame``), ``closed()``
    waits for the server to close.  ``data`` and ``value`` convert call/push data for its
    framing (binary: JSON bytes; JSON framings: the value)."""

    def __init__(self, framing: int) -> None:
        self.framing = framing
        self.decoder = FrameDecoder(1 << 30, framing, client=True)
        self.frames: asyncio.Queue[Frame | Violation | None] = asyncio.Queue()
        self.welcome: dict[str, Any] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ws: Any = None
        self._writer: asyncio.StreamWriter | None = None
        self._request_id = 0
        self.eof = False

    # ------------------------------------------------------------------ connecting
    @classmethod
    async def websocket(cls, port: int, *, text: bool = False, subprotocols: list[str] | None = None,
                        max_queue: int | None = 16, rcvbuf: int | None = None) -> "PushClient":
        """``rcvbuf``: the socket's receive buffer (small: a paused client fills up soon)."""
        client = cls(FRAMING_WS_TEXT if text else FRAMING_WS_BINARY)
        sock = await _connected(port, rcvbuf)
        client._ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/push", subprotocols=subprotocols,  # type: ignore[arg-type]
            max_size=None, max_queue=max_queue, compression=None, ping_interval=None,
            open_timeout=TIMEOUT_S, close_timeout=1.0, sock=sock)
        client._reader = asyncio.get_running_loop().create_task(client._read_ws())
        return client

    @classmethod
    async def tcp(cls, port: int, *, json_lines: bool = False,
                  rcvbuf: int | None = None) -> "PushClient":
        """``rcvbuf``: the socket's receive buffer (small: a paused client fills up soon)."""
        client = cls(FRAMING_JSON_LINES if json_lines else FRAMING_BINARY)
        reader, writer = await asyncio.open_connection(sock=await _connected(port, rcvbuf))
        client._writer = writer
        client._reader = asyncio.get_running_loop().create_task(client._read_tcp(reader))
        return client

    def pause(self) -> None:
        """Stop reading from the socket (a slow consumer): the kernel's buffers fill up."""
        self._transport().pause_reading()

    def resume(self) -> None:
        self._transport().resume_reading()

    def _transport(self) -> Any:
        return self._ws.transport if self._ws is not None else self._writer.transport  # type: ignore[union-attr]

    @property
    def subprotocol(self) -> str | None:
        return self._ws.subprotocol if self._ws is not None else None

    async def _read_ws(self) -> None:
        try:
            async for message in self._ws:
                for item in self.decoder.feed(message):
                    self.frames.put_nowait(item)
        except ConnectionClosed:
            pass
        finally:
            self.eof = True
            self.frames.put_nowait(None)

    async def _read_tcp(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for item in self.decoder.feed(data):
                    self.frames.put_nowait(item)
        except ConnectionError:
            pass
        finally:
            self.eof = True
            self.frames.put_nowait(None)

    # ------------------------------------------------------------------ frames
    def data(self, value: Any) -> Any:
        """Call data as this framing carries it under the json codec."""
        if self.framing in (FRAMING_BINARY, FRAMING_WS_BINARY):
            return orjson.dumps(value)
        return value

    def value(self, payload: Any) -> Any:
        """What a REPLY's or PUSH's payload means under the json codec."""
        if self.framing in (FRAMING_BINARY, FRAMING_WS_BINARY):
            return orjson.loads(payload) if payload else None
        return payload

    async def send_raw(self, data: bytes | str) -> None:
        if self._ws is not None:
            await self._ws.send(data)
        else:
            assert self._writer is not None
            self._writer.write(data if isinstance(data, bytes) else data.encode())
            await self._writer.drain()

    async def send(self, kind: int, id: int = 0, name: str = "", payload: Any = None,
                   flags: int = 0) -> None:
        frame = encode(kind, id, name, payload, flags, self.framing)
        if self.framing == FRAMING_WS_TEXT:
            await self.send_raw(frame.decode())
        else:
            await self.send_raw(frame)

    async def recv(self, timeout_s: float = TIMEOUT_S, *, pings: bool = False) -> Frame:
        """The next frame (server PINGs are answered and skipped unless ``pings``);
        ``EOFError`` once the connection closed, ``AssertionError`` on a violation."""
        while True:
            item = await asyncio.wait_for(self.frames.get(), timeout_s)
            if item is None:
                self.frames.put_nowait(None)
                raise EOFError("the server closed the connection")
            assert not isinstance(item, Violation), f"the server broke the protocol: {item.reason}"
            if item.kind == KIND_PING and not pings:
                await self.send(KIND_PONG, item.id)
                continue
            return item

    async def recv_kind(self, kind: int, timeout_s: float = TIMEOUT_S) -> Frame:
        frame = await self.recv(timeout_s)
        assert frame.kind == kind, f"expected kind {kind}, got {frame}"
        return frame

    async def hello(self, credentials: Any = None, **hello: Any) -> Frame:
        """HELLO; the WELCOME (kept in ``welcome``) or REFUSE that answers it."""
        payload: dict[str, Any] = {k: v for k, v in hello.items() if v is not None}
        if credentials is not None:
            payload["credentials"] = credentials
        await self.send(KIND_HELLO, 0, VERSION, payload)
        frame = await self.recv()
        if frame.name == VERSION:
            assert isinstance(frame.payload, dict)
            self.welcome = frame.payload
        return frame

    async def call(self, name: str, data: Any = None, timeout_s: float = TIMEOUT_S) -> Frame:
        """CALL and its REPLY or ERROR (pushes meanwhile are put back in order)."""
        self._request_id += 1
        request_id = self._request_id
        await self.send(KIND_CALL, request_id, name, self.data(data))
        others: list[Frame] = []
        try:
            while True:
                frame = await self.recv(timeout_s)
                if frame.id == request_id and frame.kind in (5, 6):
                    return frame
                others.append(frame)
        finally:
            if others:
                rest: list[Frame | Violation | None] = list(others)
                while not self.frames.empty():
                    rest.append(self.frames.get_nowait())
                for item in rest:
                    self.frames.put_nowait(item)

    async def pushes(self, count: int, timeout_s: float = TIMEOUT_S, *,
                     ack: bool = True) -> list[Frame]:
        """The next ``count`` PUSH or GAP frames (acked when they ask for it)."""
        got: list[Frame] = []
        while len(got) < count:
            frame = await self.recv(timeout_s)
            assert frame.kind in (KIND_PUSH, KIND_GAP), f"expected a push, got {frame}"
            if ack and frame.kind == KIND_PUSH and frame.flags & FLAG_ACK_REQUESTED:
                await self.send(KIND_ACK, frame.id)
            got.append(frame)
        return got

    async def closed(self, timeout_s: float = TIMEOUT_S) -> list[Frame]:
        """Every frame until the server closed the connection (pings not answered)."""
        got: list[Frame] = []
        while True:
            try:
                got.append(await self.recv(timeout_s, pings=True))
            except EOFError:
                return got

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        elif self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._reader, TIMEOUT_S)

    async def abort(self) -> None:
        """Drop the connection without any close (a client whose network went away)."""
        if self._ws is not None:
            self._ws.transport.abort()
        elif self._writer is not None:
            self._writer.transport.abort()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._reader, TIMEOUT_S)

    async def say_close(self, code: str = "normal") -> list[Frame]:
        await self.send(KIND_CLOSE, 0, code, "")
        return await self.closed()
