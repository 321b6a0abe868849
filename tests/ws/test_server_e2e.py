"""The WebSocket server end to end: real sockets on 127.0.0.1, uvloop and stdlib asyncio.

Clients nobody here wrote where they fit (the ``websockets`` library, h11 for HTTP answers) and a
raw socket where the test needs a misbehaving peer (one that stops answering pings, stops
reading, drops mid-message or sends a deflate bomb).  Frames the raw client reads are parsed by
``read_frame`` below, not by cyserve's codec.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import zlib
from typing import Any, AsyncIterator

import h11
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from cyserve import App, Forbidden, HTTPError, WebSocket, WebSocketDisconnect, WebSocketLimits
from cyserve.websocket import accept_key, broadcast
from tests.support import RawClient, serving

FAST = WebSocketLimits(close_timeout_s=1.0)


# ---------------------------------------------------------------- a raw client
def client_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False,
                 length: int | None = None) -> bytes:
    """One masked client frame (RFC 6455 §5.2); ``length`` declares another payload length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """(opcode, payload) of the next frame a server sent (unmasked, §5.1)."""
    async def go() -> tuple[int, bytes]:
        b0, b1 = await reader.readexactly(2)
        assert not b1 & 0x80, "a server must not mask"
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        return b0 & 0x0F, await reader.readexactly(n)
    return await asyncio.wait_for(go(), timeout_s)


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def upgrade_head(path: str = "/ws", *fields: str, key: str | None = None, version: str = "13",
                 method: str = "GET", http: str = "1.1") -> bytes:
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = [f"{method} {path} HTTP/{http}", "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", f"Sec-WebSocket-Version: {version}",
             *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawSocket:
    """A hand-driven WebSocket client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 headers: dict[str, str]) -> None:
        self.reader = reader
        self.writer = writer
        self.headers = headers

    @classmethod
    async def open(cls, port: int, path: str = "/ws", *fields: str, rcvbuf: int | None = None,
                   sndbuf: int | None = None, limit: int = 1 << 24) -> RawSocket:
        """``rcvbuf``/``sndbuf``: the socket's kernel buffers; ``limit``: the reader's (it stops
        reading the socket at twice that), small for a client that must not read."""
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(upgrade_head(path, *fields, key=key))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101 "), lines[0]
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
        assert headers["sec-websocket-accept"] == accept_key(key)
        return cls(reader, writer, headers)

    def send(self, opcode: int, payload: bytes, **kw: Any) -> None:
        self.writer.write(client_frame(opcode, payload, **kw))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def connect(port: int, path: str = "/ws", **kw: Any) -> AsyncIterator[Any]:
    async with websockets.connect(f"ws://127.0.0.1:{port}{path}", open_timeout=5, close_timeout=2,
                                  **kw) as client:
        yield client


def echo_app(limits: WebSocketLimits = FAST) -> tuple[App, list[Any]]:
    """An echo server; ``seen`` gets how each handler ended (the close code, or the error)."""
    app = App(websocket=limits)
    seen: list[Any] = []

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            async for message in ws:
                await ws.send(message)
            seen.append(ws.close_code)
        except WebSocketDisconnect as exc:
            seen.append(exc.code)
            raise
    return app, seen


async def until(predicate: Any, timeout_s: float = 3.0) -> None:
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(wait(), timeout_s)


# ---------------------------------------------------------------- messages
def test_echo_text_and_binary(run):
    async def main():
        app, seen = echo_app()
        async with serving(app) as server:
            async with connect(server.port) as client:
                await client.send("héllo")
                assert await client.recv() == "héllo"
                await client.send(b"\x00\xffbin")
                assert await client.recv() == b"\x00\xffbin"
                big = os.urandom(300_000)
                await client.send(big)
                assert await client.recv() == big
            await until(lambda: seen)
            assert seen == [1000]   # the client's close ended the iteration normally
    run(main)


def test_accept_with_subprotocol_and_headers_and_path_params(run):
    async def main():
        app = App(websocket=FAST)

        @app.websocket("/rooms/{room}")
        async def room(ws: WebSocket, room: str, user: str = "anon") -> None:
            assert ws.subprotocols == ["chat.v2", "chat.v1"]
            await ws.accept(subprotocol="chat.v1", headers={"x-room": room})
            await ws.send_json({"room": room, "user": user, "path": ws.path,
                                "params": ws.path_params})
            assert await ws.receive_text() == "bye"

        async with serving(app) as server:
            async with connect(server.port, "/rooms/lobby?user=ann",
                               subprotocols=["chat.v2", "chat.v1"]) as client:
                assert client.subprotocol == "chat.v1"
                assert client.response.headers["x-room"] == "lobby"
                assert await client.recv() == ('{"room":"lobby","user":"ann","path":"/rooms/lobby",'
                                               '"params":{"room":"lobby"}}')
                await client.send("bye")
                await asyncio.wait_for(client.wait_closed(), 3)
                assert client.close_code == 1000   # the handler returned: a normal close
    run(main)


def test_after_hooks_see_the_101_and_handler_errors_close_with_1011(run):
    async def main():
        app = App(websocket=FAST)
        statuses: list[Any] = []

        @app.after
        def record(request: Any, response: Any) -> None:
            statuses.append(response.status)

        @app.websocket("/ws")
        async def fails(ws: WebSocket) -> None:
            await ws.accept()
            await ws.receive()
            raise RuntimeError("boom")

        async with serving(app) as server:
            async with connect(server.port) as client:
                await client.send("x")
                await asyncio.wait_for(client.wait_closed(), 3)
                assert client.close_code == 1011
            await until(lambda: statuses)
            assert statuses == [101]
    run(main)


# ---------------------------------------------------------------- the handshake is the app's
def test_reject_answers_plain_http_with_the_body(run):
    async def main():
        app = App(websocket=FAST)

        @app.websocket("/ws")
        async def refuse(ws: WebSocket) -> None:
            await ws.reject(403, b"bad origin", headers={"x-why": "origin"})

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/ws", _upgrade_fields())
            assert (reply.status, reply.body, reply.headers["x-why"]) == (403, b"bad origin", "origin")
            assert reply.informational == []
            await client.close()
            with pytest.raises(InvalidStatus) as caught:
                async with connect(server.port):
                    pass
            assert caught.value.response.status_code == 403
    run(main)


def test_origin_checked_by_a_before_hook_before_the_handler_runs(run):
    async def main():
        app = App(websocket=FAST)
        handled: list[str] = []

        @app.before
        def origin(request: Any) -> None:
            if request.headers.get("origin") != "https://good.example":
                raise Forbidden("bad origin")

        @app.websocket("/ws")
        async def handler(ws: WebSocket) -> None:
            handled.append(ws.headers["origin"])
            await ws.accept()
            await ws.send("welcome")

        async with serving(app) as server:
            with pytest.raises(InvalidStatus) as caught:
                async with connect(server.port, origin="https://evil.example"):
                    pass
            assert caught.value.response.status_code == 403
            assert handled == []
            async with connect(server.port, origin="https://good.example") as client:
                assert await client.recv() == "welcome"
            assert handled == ["https://good.example"]
    run(main)


def test_http_error_before_accept_and_returning_without_accept(run):
    async def main():
        app = App(websocket=FAST)

        @app.websocket("/private")
        async def private(ws: WebSocket) -> None:
            if ws.query.get("token") != "s3cret":
                raise HTTPError(401, "token needed", [("WWW-Authenticate", "Bearer")])
            await ws.accept()

        @app.websocket("/silent")
        async def silent(ws: WebSocket) -> None:
            return None

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/private", _upgrade_fields())
            assert reply.status == 401 and reply.headers["www-authenticate"] == "Bearer"
            reply = await client.request("GET", "/silent", _upgrade_fields())
            assert reply.status == 403 and reply.informational == []
            await client.close()
            async with connect(server.port, "/private?token=s3cret") as ws_client:
                await asyncio.wait_for(ws_client.wait_closed(), 3)
                assert ws_client.close_code == 1000
    run(main)


def _upgrade_fields(key: str | None = None, version: str | None = "13") -> list[tuple[str, str]]:
    fields = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
              ("Sec-WebSocket-Key", key if key is not None else base64.b64encode(os.urandom(16)).decode())]
    if version is not None:
        fields.append(("Sec-WebSocket-Version", version))
    return fields


GOOD_KEY = base64.b64encode(b"0123456789abcdef").decode()

INVALID_UPGRADES = [
    pytest.param(upgrade_head(version="8"), 426, id="version-8-is-426"),
    pytest.param(upgrade_head(version="13, 8"), 426, id="two-versions-is-426"),
    pytest.param(upgrade_head(key="").replace(b"Sec-WebSocket-Key: \r\n", b""), 400, id="no-key"),
    pytest.param(upgrade_head(key=base64.b64encode(b"short").decode()), 400, id="key-not-16-bytes"),
    pytest.param(upgrade_head(key="!!!!not-base64!!!!!!!!=="), 400, id="key-not-base64"),
    pytest.param(upgrade_head(key=GOOD_KEY).replace(b"\r\n\r\n", f"\r\nSec-WebSocket-Key: {GOOD_KEY}"
                                                    "\r\n\r\n".encode()), 400, id="two-keys"),
    pytest.param(upgrade_head().replace(b"Upgrade: websocket\r\n", b"Upgrade: h2c\r\n"), 400,
                 id="upgrade-not-websocket"),
    pytest.param(upgrade_head().replace(b"Connection: Upgrade\r\n", b"Connection: keep-alive\r\n"), 400,
                 id="connection-not-upgrade"),
    pytest.param(upgrade_head(http="1.0"), 400, id="http-1.0"),
    pytest.param(upgrade_head(method="HEAD"), 400, id="head-not-get"),
    pytest.param(upgrade_head(method="POST").replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"),
                 405, id="post-not-get"),
]


@pytest.mark.parametrize("request_bytes, status", INVALID_UPGRADES)
def test_invalid_upgrade_is_refused_and_never_upgraded(run, request_bytes, status):
    async def main():
        app = App(websocket=FAST)
        handled: list[bool] = []

        @app.websocket("/ws")
        async def handler(ws: WebSocket) -> None:
            handled.append(True)
            await ws.accept()

        async with serving(app) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request_bytes)
            method = request_bytes.split(b" ", 1)[0].decode()
            conn = h11.Connection(h11.CLIENT)
            conn.send(h11.Request(method=method, target="/ws", headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await asyncio.wait_for(reader.read(65536), 5))
                    continue
                assert not isinstance(event, h11.InformationalResponse), "upgraded"
                if isinstance(event, h11.Response):
                    break
            assert event.status_code == status
            if status == 426:
                assert (b"sec-websocket-version", b"13") in list(event.headers)
            assert handled == []
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    run(main)


# ---------------------------------------------------------------- compression
def test_permessage_deflate_negotiated_with_websockets_and_round_trips(run):
    async def main():
        app, _ = echo_app()
        async with serving(app) as server:
            async with connect(server.port) as client:   # websockets offers deflate by default
                answer = client.response.headers["sec-websocket-extensions"]
                assert answer.startswith("permessage-deflate")
                for message in ("short", "x" * 50_000, b"\x01\x02" * 40_000, "é" * 10_000, b""):
                    await client.send(message)
                    assert await client.recv() == message
        plain, _ = echo_app(WebSocketLimits(close_timeout_s=1.0, compression=False))
        async with serving(plain) as server:
            async with connect(server.port) as client:
                assert "sec-websocket-extensions" not in client.response.headers
                await client.send("x" * 1000)
                assert await client.recv() == "x" * 1000
    run(main)


# ---------------------------------------------------------------- pings
def test_server_ping_round_trip(run):
    async def main():
        app = App(websocket=FAST)

        @app.websocket("/ws")
        async def pinger(ws: WebSocket) -> None:
            await ws.accept()
            rtt = await ws.ping(b"hi")
            await ws.send(f"{rtt:.6f}")
            rtt = await ws.ping()
            await ws.send(f"{rtt:.6f}")
            await ws.receive()

        async with serving(app) as server:
            async with connect(server.port) as client:   # websockets answers pings itself
                for _ in range(2):
                    rtt = float(await client.recv())
                    assert 0 <= rtt < 2
    run(main)


def test_peer_that_stops_answering_pings_is_closed_with_1011(run):
    async def main():
        app, seen = echo_app(WebSocketLimits(ping_interval_s=0.2, ping_timeout_s=0.3,
                                             close_timeout_s=1.0))
        async with serving(app) as server:
            raw = await RawSocket.open(server.port)
            opcode, payload = await read_frame(raw.reader)     # never answered
            assert opcode == 0x9
            opcode, payload = await read_frame(raw.reader)
            assert (opcode, close_code(payload)) == (0x8, 1011)
            assert await asyncio.wait_for(raw.reader.read(), 3) == b""   # and TCP closed
            await until(lambda: seen)
            assert seen == [1011]
            await raw.close()
    run(main)


def test_answered_pings_keep_an_idle_connection_open(run):
    async def main():
        app, _ = echo_app(WebSocketLimits(ping_interval_s=0.1, ping_timeout_s=0.2, close_timeout_s=1.0))
        async with serving(app) as server:
            async with connect(server.port, ping_interval=None) as client:
                await asyncio.sleep(0.8)                # several keepalive pings, all answered
                await client.send("still here")
                assert await client.recv() == "still here"
    run(main)


# ---------------------------------------------------------------- limits
def test_message_over_the_limit_closes_with_1009(run):
    async def main():
        app, seen = echo_app(WebSocketLimits(max_message_bytes=1024, close_timeout_s=1.0))
        async with serving(app) as server:
            async with connect(server.port, compression=None) as client:
                await client.send("x" * 1024)
                assert await client.recv() == "x" * 1024
                await client.send("x" * 1025)
                with pytest.raises(ConnectionClosed):
                    await client.recv()
                assert client.close_code == 1009
            await until(lambda: seen)
            assert seen == [1009]
    run(main)


def test_deflate_bomb_closes_with_1009(run):
    async def main():
        app, seen = echo_app(WebSocketLimits(max_message_bytes=64 * 1024, close_timeout_s=1.0))
        async with serving(app) as server:
            raw = await RawSocket.open(server.port, "/ws", "Sec-WebSocket-Extensions: permessage-deflate")
            assert raw.headers["sec-websocket-extensions"].startswith("permessage-deflate")
            deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
            bomb = deflater.compress(b"\0" * (64 * 1024 * 1024)) + deflater.flush(zlib.Z_SYNC_FLUSH)
            bomb = bomb[:-4]                               # RFC 7692 §7.2.1
            assert len(bomb) < 128 * 1024                  # 64 MiB in well under the frame limit
            raw.send(0x2, bomb, rsv1=True)
            while True:
                opcode, payload = await read_frame(raw.reader)
                if opcode == 0x8:
                    break
            assert close_code(payload) == 1009
            await until(lambda: seen)
            assert seen == [1009]
            await raw.close()
    run(main)


# ---------------------------------------------------------------- backpressure
def test_slow_consumer_keeps_server_memory_bounded(run):
    async def main():
        limits = WebSocketLimits(write_high_water=64 * 1024, write_low_water=16 * 1024,
                                 compression=False, close_timeout_s=1.0)
        app = App(websocket=limits)
        sent: list[int] = []
        peaks: list[int] = []
        stop = asyncio.Event()
        chunk = b"m" * (32 * 1024)

        @app.websocket("/ws")
        async def producer(ws: WebSocket) -> None:
            await ws.accept()
            with contextlib.suppress(WebSocketDisconnect):
                while not stop.is_set():           # 500 MB if nothing pushed back
                    await ws.send(chunk)
                    sent.append(len(chunk))
                    peaks.append(ws.buffered_bytes)
                    if sum(sent) > 500 * 1024 * 1024:
                        break

        async with serving(app) as server:
            raw = await RawSocket.open(server.port, rcvbuf=16 * 1024, limit=16 * 1024)  # never reads
            await asyncio.sleep(0.5)
            first = sum(sent)
            await asyncio.sleep(0.5)
            assert sum(sent) == first, "send() did not wait for the slow client"
            assert first < 16 * 1024 * 1024
            assert max(peaks) <= limits.write_high_water + len(chunk) + 16 * 1024
            # It reads again: the producer resumes.
            await raw.reader.readexactly(4 * 1024 * 1024)
            await until(lambda: sum(sent) > first)
            stop.set()
            await raw.close()
    run(main)


def test_full_receive_queue_pauses_reading_until_the_handler_receives(run):
    async def main():
        limits = WebSocketLimits(max_receive_queue=4, compression=False, close_timeout_s=1.0)
        app = App(websocket=limits)
        go = asyncio.Event()
        sockets: list[WebSocket] = []
        got: list[int] = []

        @app.websocket("/ws")
        async def lazy(ws: WebSocket) -> None:
            await ws.accept()
            sockets.append(ws)
            await go.wait()
            async for message in ws:
                got.append(len(message))

        async with serving(app) as server:
            raw = await RawSocket.open(server.port, sndbuf=16 * 1024)
            message = b"q" * (64 * 1024)
            count = 0
            # The client keeps sending until its own buffer fills: the server stopped reading.
            while raw.writer.transport.get_write_buffer_size() < 1024 * 1024:
                raw.send(0x2, message)
                count += 1
                assert count < 1024, "the server never pushed back"
                await asyncio.sleep(0)
                if count % 16 == 0:
                    await asyncio.sleep(0.02)
            await until(lambda: sockets and sockets[0]._role.reading_held)
            role = sockets[0]._role
            assert role.queued == 4
            go.set()                                     # receives: reading resumes
            await until(lambda: len(got) == count, 5)
            assert not role.reading_held
            raw.send(0x8, struct.pack("!H", 1000))
            opcode, payload = await read_frame(raw.reader)
            assert (opcode, close_code(payload)) == (0x8, 1000)
            await raw.close()
    run(main)


def test_broadcast_skips_and_reports_a_stalled_socket(run):
    async def main():
        limits = WebSocketLimits(write_high_water=32 * 1024, write_low_water=8 * 1024,
                                 close_timeout_s=1.0)
        app = App(websocket=limits)
        sockets: list[WebSocket] = []

        @app.websocket("/ws")
        async def member(ws: WebSocket) -> None:
            await ws.accept()
            sockets.append(ws)
            with contextlib.suppress(WebSocketDisconnect):
                async for _ in ws:
                    pass

        async with serving(app) as server:
            stalled = await RawSocket.open(server.port, rcvbuf=16 * 1024, limit=16 * 1024)  # never reads
            async with connect(server.port, max_size=None) as reader:
                await until(lambda: len(sockets) == 2)
                slow, fast = sockets                    # the raw socket was accepted first
                message = "b" * (16 * 1024)
                delivered = 0
                skipped: list[Any] = []
                for _ in range(2000):
                    skipped = broadcast(sockets, message)
                    if fast not in skipped:
                        delivered += 1
                    assert await reader.recv() == message        # the reader keeps up
                    if skipped == [slow]:
                        break
                assert skipped == [slow], "the stalled socket was never reported"
                assert slow.buffered_bytes < 32 * 1024 + 16 * 1024 + 1024
                assert delivered > 0
            await stalled.close()
    run(main)


# ---------------------------------------------------------------- the end of a connection
def test_graceful_shutdown_sends_1001(run):
    async def main():
        app, seen = echo_app()
        server_cm = serving(app)
        server = await server_cm.__aenter__()
        try:
            async with connect(server.port) as client:
                await client.send("hi")
                assert await client.recv() == "hi"
                shutdown = asyncio.ensure_future(server.shutdown(timeout_s=3.0))
                with pytest.raises(ConnectionClosed):
                    await client.recv()
                assert client.close_code == 1001
                await asyncio.wait_for(shutdown, 5)
        finally:
            await server_cm.__aexit__(None, None, None)
        assert seen == [1001]   # the iteration ended on it (a normal close)
    run(main)


def test_disconnect_mid_message_is_1006(run):
    async def main():
        app, seen = echo_app()
        async with serving(app) as server:
            raw = await RawSocket.open(server.port)
            frame = client_frame(0x2, b"x" * 1000)
            raw.writer.write(frame[:200])                  # a frame cut short, then gone
            await raw.writer.drain()
            await asyncio.sleep(0.05)
            await raw.close()
            await until(lambda: seen)
            assert seen == [1006]
    run(main)


def test_peer_close_without_code_is_answered_with_1000(run):
    async def main():
        app, seen = echo_app()
        async with serving(app) as server:
            raw = await RawSocket.open(server.port)
            raw.send(0x8, b"")
            opcode, payload = await read_frame(raw.reader)
            assert (opcode, close_code(payload)) == (0x8, 1000)
            assert await asyncio.wait_for(raw.reader.read(), 3) == b""   # the server closes TCP
            await until(lambda: seen)
            assert seen == [1005]
            await raw.close()
    run(main)


def test_protocol_error_closes_with_1002(run):
    async def main():
        app, seen = echo_app()
        async with serving(app) as server:
            raw = await RawSocket.open(server.port)
            raw.writer.write(b"\x81\x02hi")                # unmasked from a client: §5.1
            opcode, payload = await read_frame(raw.reader)
            assert (opcode, close_code(payload)) == (0x8, 1002)
            assert await asyncio.wait_for(raw.reader.read(), 3) == b""
            await until(lambda: seen)
            assert seen == [1002]
            await raw.close()
    run(main)
