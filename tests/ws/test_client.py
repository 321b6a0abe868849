"""cyserve's WebSocket client against servers nobody here wrote: websockets' and aiohttp's, with
and without permessage-deflate, over TLS (a trustme CA) and through a CONNECT proxy; and the
opening handshake's failures (RFC 6455 §4.1) from scripted raw servers.  Every test runs on
uvloop and stdlib asyncio (the ``run`` fixture)."""
from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from typing import Any, AsyncIterator

import pytest

from cyserve import App, WebSocket
from cyserve.client import Client
from cyserve.config import WebSocketLimits
from cyserve.errors import (
    ClientError, ConnectError, HTTPStatusError, RemoteProtocolError, WebSocketDisconnect,
)
from cyserve.websocket import accept_key
from tests.client.peers import proxy_server, serving_tls
from tests.support import serving

websockets_server = pytest.importorskip("websockets.asyncio.server")
web = pytest.importorskip("aiohttp.web")

BIG = os.urandom(700 * 1024)                      # under the 1 MiB message limit of every side
BIG_TEXT = "ünïcödé, " * 40_000                   # ~440 KB of UTF-8, compresses well
COMPRESSION = [pytest.param(True, id="deflate"), pytest.param(False, id="plain")]


# ---------------------------------------------------------------------- the peers
async def _websockets_echo(ws: Any) -> None:
    """Echo; a text message "close <code> <reason>" makes the server close with them; the code
    and reason the client closed with are kept in ``closed``."""
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("close "):
                _, code, reason = message.split(" ", 2)
                await ws.close(int(code), reason)
                return
            if message == "headers":
                await ws.send(repr(sorted((k.lower(), v) for k, v in ws.request.headers.raw_items())))
                continue
            await ws.send(message)
    finally:
        _closed.append((ws.close_code, ws.close_reason))


_closed: list[tuple[int | None, str | None]] = []


@contextlib.asynccontextmanager
async def websockets_peer(compression: bool = True, ssl_ctx: ssl.SSLContext | None = None,
                          **options: Any) -> AsyncIterator[str]:
    """websockets' server on 127.0.0.1:0; yields its ws:// (or wss://) base URL."""
    _closed.clear()
    async with websockets_server.serve(
            _websockets_echo, "127.0.0.1", 0, ssl=ssl_ctx,
            compression="deflate" if compression else None, max_size=2 * 1024 * 1024,
            **options) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"{'wss' if ssl_ctx else 'ws'}://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def aiohttp_peer(compression: bool = True) -> AsyncIterator[tuple[str, list[Any]]]:
    """aiohttp's server: ``/echo`` (subprotocols chat.v2 and chat.v1, "close <code> <reason>"
    as above) and ``/refuse`` (403 with a body); yields the base URL and the close codes seen."""
    from aiohttp import WSMsgType
    seen: list[Any] = []

    async def echo(request: Any) -> Any:
        ws = web.WebSocketResponse(protocols=("chat.v2", "chat.v1"), compress=compression,
                                   max_msg_size=2 * 1024 * 1024, heartbeat=None)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if msg.data.startswith("close "):
                    _, code, reason = msg.data.split(" ", 2)
                    await ws.close(code=int(code), message=reason.encode())
                    break
                if msg.data == "protocol":
                    await ws.send_str(ws.ws_protocol or "-")
                    continue
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        seen.append((ws.close_code, request.headers.get("Sec-WebSocket-Extensions")))
        return ws

    async def refuse(request: Any) -> Any:
        return web.Response(status=403, text="no sockets for you")

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/refuse", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_peer(answer: Any) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A scripted server: reads one request head, writes ``answer(request_head)`` (bytes), then
    reads until the client closes.  Yields its URL and what it read: the heads, then (after each
    head) the bytes that followed it."""
    heads: list[bytes] = []
    tasks: set[asyncio.Task[None]] = set()

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            heads.append(head)
            writer.write(answer(head))
            await writer.drain()
            heads.append(await reader.read())
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(serve_one(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", heads
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def _field(head: bytes, name: str) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def switching(*, accept: str | None = None, extra: str = "", upgrade: str = "websocket",
              connection: str = "Upgrade") -> Any:
    """A 101 answer, right unless told otherwise (``accept`` replaces the right key)."""
    def answer(head: bytes) -> bytes:
        key = _field(head, "sec-websocket-key") or ""
        value = accept if accept is not None else accept_key(key)
        return (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: {upgrade}\r\nConnection: "
                f"{connection}\r\nSec-WebSocket-Accept: {value}\r\n{extra}\r\n").encode("latin-1")
    return answer


# ---------------------------------------------------------------------- websockets' server
@pytest.mark.parametrize("compression", COMPRESSION)
def test_echo_against_websockets_server(run, compression):
    async def main():
        async with websockets_peer(compression) as base, Client() as client:
            async with client.websocket(base + "/echo", compression=compression) as ws:
                assert ws.compressed is compression
                assert (ws.extensions is not None) is compression
                await ws.send("hello")
                assert await ws.receive() == "hello"
                await ws.send_bytes(b"\x00\xff" * 10)
                assert await ws.receive_bytes() == b"\x00\xff" * 10
                await ws.send_json({"a": [1, 2]})
                assert await ws.receive_json() == {"a": [1, 2]}
                await ws.send(BIG)
                assert await ws.receive() == BIG
                await ws.send_text(BIG_TEXT)
                assert await ws.receive_text() == BIG_TEXT
                await ws.send("")
                assert await ws.receive() == ""
            assert ws.close_code == 1000 and ws.closed
        assert _closed == [(1000, "")]
    run(main)


def test_subprotocol_and_headers_against_websockets_server(run):
    async def main():
        async with websockets_peer(subprotocols=["chat.v2", "chat.v1"]) as base:
            async with Client(headers={"X-Client": "default"}) as client:
                async with client.websocket(base + "/p?q=1", subprotocols=["chat.v1", "chat.v2"],
                                            headers={"X-Extra": "yes"}) as ws:
                    assert ws.subprotocol in ("chat.v1", "chat.v2")
                    assert ws.headers.get("sec-websocket-protocol") == ws.subprotocol
                    await ws.send("headers")
                    sent = dict(eval(await ws.receive_text()))
                    assert sent["x-client"] == "default" and sent["x-extra"] == "yes"
                    assert sent["upgrade"] == "websocket" and sent["connection"] == "Upgrade"
                    assert sent["sec-websocket-version"] == "13"
                    assert sent["sec-websocket-protocol"] == "chat.v1, chat.v2"
                # websockets refuses an offer without one of its subprotocols
                with pytest.raises(HTTPStatusError) as info:
                    async with client.websocket(base + "/", subprotocols=["other"]):
                        pass
                assert info.value.status == 400
        async with websockets_peer() as base, Client() as client:
            # a server with no subprotocols picks none of what is offered: still open
            async with client.websocket(base + "/", subprotocols=["other"]) as ws:
                assert ws.subprotocol is None
                await ws.send("x")
                assert await ws.receive() == "x"
    run(main)


def test_ping_round_trip_against_websockets_server(run):
    async def main():
        async with websockets_peer() as base, Client() as client:
            async with client.websocket(base) as ws:
                rtt = await ws.ping(b"are you there")
                assert 0 <= rtt < 5
                assert 0 <= await ws.ping() < 5
                await ws.send("still open")
                assert await ws.receive() == "still open"
    run(main)


def test_close_codes_both_ways_against_websockets_server(run):
    async def main():
        async with websockets_peer() as base, Client() as client:
            # the client closes: the server sees its code and reason
            async with client.websocket(base) as ws:
                await ws.close(4001, "bye from the client")
                assert ws.close_code == 4001
            await asyncio.sleep(0.05)
            assert _closed == [(4001, "bye from the client")]
            # the server closes: receive raises, then iteration ends only on a normal close
            async with client.websocket(base) as ws:
                await ws.send("close 4002 bye from the server")
                with pytest.raises(WebSocketDisconnect) as info:
                    await ws.receive()
                assert (info.value.code, info.value.reason) == (4002, "bye from the server")
                assert (ws.close_code, ws.close_reason) == (4002, "bye from the server")
                with pytest.raises(WebSocketDisconnect):
                    await ws.send("too late")
            async with client.websocket(base) as ws:
                await ws.send("one")
                await ws.send("close 1000 done")
                assert [m async for m in ws] == ["one"]
                assert ws.close_code == 1000
    run(main)


def test_refusal_by_websockets_server_is_an_http_status_error(run):
    async def main():
        def refuse(connection: Any, request: Any) -> Any:
            return connection.respond(403, "no sockets for you\n")

        async with websockets_peer(process_request=refuse) as base, Client() as client:
            with pytest.raises(HTTPStatusError) as info:
                async with client.websocket(base):
                    pass
            assert info.value.status == 403
            assert "refused" in str(info.value)
            assert await info.value.response.text() == "no sockets for you\n"
    run(main)


# ---------------------------------------------------------------------- aiohttp's server
@pytest.mark.parametrize("compression", COMPRESSION)
def test_echo_against_aiohttp_server(run, compression):
    async def main():
        async with aiohttp_peer(compression) as (base, seen), Client() as client:
            async with client.websocket(base + "/echo", subprotocols=["chat.v1"]) as ws:
                assert ws.subprotocol == "chat.v1"
                assert ws.compressed is compression
                await ws.send("protocol")
                assert await ws.receive() == "chat.v1"
                await ws.send(BIG)
                assert await ws.receive() == BIG
                await ws.send(BIG_TEXT)
                assert await ws.receive() == BIG_TEXT
                for i in range(50):
                    await ws.send(f"message {i}")
                assert [await ws.receive() for _ in range(50)] == [f"message {i}" for i in range(50)]
                assert 0 <= await ws.ping(b"p") < 5
                await ws.close(4005, "client done")
            assert seen[0][0] == 4005
            # the offer went out either way; only with compression=False is nothing offered
            async with client.websocket(base + "/echo", compression=False) as ws:
                assert not ws.compressed and ws.subprotocol is None
                await ws.send(b"bin")
                assert await ws.receive() == b"bin"
            assert seen[1] == (1000, None)
    run(main)


def test_server_close_and_refusal_against_aiohttp_server(run):
    async def main():
        async with aiohttp_peer() as (base, _), Client() as client:
            async with client.websocket(base + "/echo") as ws:
                await ws.send("close 4003 aiohttp says bye")
                with pytest.raises(WebSocketDisconnect) as info:
                    await ws.receive_text()
                assert (info.value.code, info.value.reason) == (4003, "aiohttp says bye")
            with pytest.raises(HTTPStatusError) as refused:
                async with client.websocket(base + "/refuse"):
                    pass
            assert refused.value.status == 403
            assert await refused.value.response.text() == "no sockets for you"
    run(main)


# ---------------------------------------------------------------------- handshake failures
def test_redirect_is_refused_not_followed(run):
    async def main():
        answer = (b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/elsewhere\r\n"
                  b"Content-Length: 0\r\n\r\n")
        async with raw_peer(lambda head: answer) as (base, heads), Client() as client:
            with pytest.raises(HTTPStatusError, match="redirected .*not followed") as info:
                async with client.websocket(base + "/here"):
                    pass
            assert info.value.status == 302
            requests = [h for h in heads if h.startswith(b"GET ")]
            assert len(requests) == 1 and requests[0].startswith(b"GET /here HTTP/1.1\r\n")
    run(main)


@pytest.mark.parametrize("answer, message", [
    pytest.param(switching(accept="dGhlIHNhbXBsZSBub25jZQ=="), "Sec-WebSocket-Accept",
                 id="wrong-accept"),
    pytest.param(switching(extra=f"Sec-WebSocket-Accept: {'x' * 28}\r\n"), "Sec-WebSocket-Accept",
                 id="two-accepts"),
    pytest.param(switching(upgrade="h2c"), "Upgrade: websocket", id="wrong-upgrade"),
    pytest.param(switching(connection="keep-alive"), "Connection: Upgrade", id="no-connection-upgrade"),
    pytest.param(switching(extra="Sec-WebSocket-Protocol: chat.v9\r\n"), "not offered",
                 id="subprotocol-not-offered"),
    pytest.param(switching(extra="Sec-WebSocket-Extensions: x-unknown\r\n"), "Extensions",
                 id="extension-not-offered"),
    pytest.param(switching(extra="Sec-WebSocket-Extensions: permessage-deflate; "
                                 "server_max_window_bits=15\r\n"), "Extensions",
                 id="deflate-window-above-offer"),
])
def test_bad_switching_answer_is_a_remote_protocol_error(run, answer, message):
    async def main():
        async with raw_peer(answer) as (base, heads), Client() as client:
            with pytest.raises(RemoteProtocolError, match=message):
                async with client.websocket(base, subprotocols=["chat.v1"]):
                    pass
            head = heads[0]
            key = _field(head, "sec-websocket-key")
            assert key is not None and len(__import__("base64").b64decode(key)) == 16
            assert _field(head, "sec-websocket-extensions").startswith("permessage-deflate")
    run(main)


def test_extension_answer_without_offer_fails(run):
    async def main():
        answer = switching(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
        async with raw_peer(answer) as (base, heads), Client() as client:
            with pytest.raises(RemoteProtocolError, match="none were offered"):
                async with client.websocket(base, compression=False):
                    pass
            assert _field(heads[0], "sec-websocket-extensions") is None
    run(main)


def test_frames_after_the_101_in_the_same_segment_are_read(run):
    async def main():
        # a server that sends its first message with the 101 (the unread tail of the handshake)
        def answer(head: bytes) -> bytes:
            return switching()(head) + b"\x81\x05hello"
        async with raw_peer(answer) as (base, _), Client() as client:
            async with client.websocket(base, limits=WebSocketLimits(close_timeout_s=0.2)) as ws:
                assert await ws.receive() == "hello"
    run(main)


def test_client_frames_are_masked_each_with_a_fresh_key(run):
    async def main():
        async with raw_peer(switching()) as (base, read), Client() as client:
            limits = WebSocketLimits(close_timeout_s=0.2, compression=False)
            async with client.websocket(base, limits=limits) as ws:
                for _ in range(8):
                    await ws.send("same text")
                # the scripted server never answers our close: the role gives up after
                # close_timeout_s and drops the connection
            await _until(lambda: len(read) == 2)
        frames, data = [], read[1]
        while data:
            assert data[1] & 0x80, "a client frame must be masked (RFC 6455 §5.3)"
            n = data[1] & 0x7F
            key, payload = data[2:6], data[6:6 + n]
            frames.append((data[0] & 0x0F, key, bytes(b ^ key[i % 4] for i, b in enumerate(payload))))
            data = data[6 + n:]
        assert [(op, text) for op, _, text in frames[:8]] == [(1, b"same text")] * 8
        assert frames[8][0] == 8 and frames[8][2][:2] == (1000).to_bytes(2, "big")
        assert len({key for _, key, _ in frames}) == len(frames)   # a fresh key per frame
    run(main)


def test_arguments_the_handshake_owns_are_refused():
    client = Client()
    with pytest.raises(ValueError, match="subprotocols="):
        client.websocket("ws://h/", headers={"Sec-WebSocket-Protocol": "x"})
    with pytest.raises(ValueError, match="handshake sets it"):
        client.websocket("ws://h/", headers=[("connection", "close")])
    with pytest.raises(ValueError, match="token"):
        client.websocket("ws://h/", subprotocols=["a b"])
    with pytest.raises(TypeError):
        client.websocket("ws://h/", subprotocols="chat")


def test_url_schemes(run):
    async def main():
        async with Client() as client:
            for url in ("ftp://h/", "ws://h/#frag", "/relative"):
                with pytest.raises(ValueError):
                    async with client.websocket(url):
                        pass
        async with websockets_peer() as base:
            # http:// (a base_url) means ws://
            async with Client(base_url=base.replace("ws://", "http://")) as client:
                async with client.websocket("/rel") as ws:
                    assert ws.url == base + "/rel"
                    await ws.send("via base_url")
                    assert await ws.receive() == "via base_url"
    run(main)


def test_connection_refused_is_a_connect_error(run):
    async def main():
        import socket
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        async with Client() as client:
            with pytest.raises(ConnectError):
                async with client.websocket(f"ws://127.0.0.1:{port}/"):
                    pass
    run(main)


# ---------------------------------------------------------------------- TLS and proxies
@pytest.fixture
def tls(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return {"ca_path": str(ca_path), "server_ctx": server_ctx}


@pytest.mark.parametrize("compression", COMPRESSION)
def test_wss_against_websockets_server_verifies_the_certificate(run, tls, compression):
    async def main():
        async with websockets_peer(compression, ssl_ctx=tls["server_ctx"]) as base:
            assert base.startswith("wss://")
            async with Client(verify=tls["ca_path"]) as client:
                async with client.websocket(base + "/tls") as ws:
                    assert ws.compressed is compression
                    await ws.send(BIG)
                    assert await ws.receive() == BIG
                    await ws.send("secure")
                    assert await ws.receive() == "secure"
                    assert await ws.ping() >= 0
            async with Client() as client:   # the system store does not know this CA
                with pytest.raises(ConnectError, match="verification failed"):
                    async with client.websocket(base):
                        pass
    run(main)


@pytest.mark.parametrize("secure", [pytest.param(False, id="ws"), pytest.param(True, id="wss")])
def test_through_a_connect_proxy(run, tls, secure):
    async def main():
        async with websockets_peer(ssl_ctx=tls["server_ctx"] if secure else None) as base, \
                proxy_server() as proxy:
            async with Client(proxy=f"http://user:pw@127.0.0.1:{proxy.port}",
                              verify=tls["ca_path"]) as client:
                async with client.websocket(base + "/via-proxy") as ws:
                    await ws.send("tunnelled")
                    assert await ws.receive() == "tunnelled"
            port = base.rsplit(":", 1)[1]
            # RFC 6455 §4.1: a WebSocket asks its proxy for a tunnel, for ws:// as for wss://
            assert proxy.connects == [f"127.0.0.1:{port}"] and proxy.forwards == []
            assert proxy.auth[0] and proxy.auth[0].startswith("Basic ")
    run(main)


def test_handshake_timeout(run):
    async def main():
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.read()
            finally:
                writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            async with Client() as client:
                with pytest.raises(ClientError):
                    async with client.websocket(f"ws://127.0.0.1:{port}/", timeout=0.2):
                        pass
        finally:
            server.close()
            await server.wait_closed()
    run(main)


# ---------------------------------------------------------------------- cyserve's own server
def cyserve_app(limits: WebSocketLimits | None = None) -> tuple[Any, list[Any]]:
    """``/echo`` (text "close <code> <reason>" closes, "ping" pings the client), ``/rooms/{room}``
    (subprotocol, headers, path and query), ``/refuse`` (403 with a body), ``/none`` (returns
    without accepting) and ``/big`` (sends a 2 MiB message).  ``seen`` gets each echo's end."""
    app = App(websocket=limits or WebSocketLimits(close_timeout_s=1.0))
    seen: list[Any] = []

    @app.websocket("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            async for message in ws:
                if message == "ping":
                    await ws.send(f"rtt {await ws.ping(b'from the server'):.6f}")
                elif isinstance(message, str) and message.startswith("close "):
                    _, code, reason = message.split(" ", 2)
                    await ws.close(int(code), reason)
                    break
                else:
                    await ws.send(message)
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))
            raise
        seen.append((ws.close_code, ws.close_reason))

    @app.websocket("/rooms/{room}")
    async def room(ws: WebSocket, room: str, user: str = "anon") -> None:
        await ws.accept(subprotocol="chat.v1" if "chat.v1" in ws.subprotocols else None,
                        headers={"x-room": room})
        await ws.send_json({"room": room, "user": user, "x": ws.headers.get("x-extra"),
                            "offered": ws.subprotocols, "compressed": ws.extensions is not None})

    @app.websocket("/refuse")
    async def refuse(ws: WebSocket) -> None:
        await ws.reject(403, b"bad origin")

    @app.websocket("/none")
    async def none(ws: WebSocket) -> None:
        return None

    @app.websocket("/big")
    async def big(ws: WebSocket) -> None:
        await ws.accept()
        try:
            await ws.send(b"x" * (2 * 1024 * 1024))
            await ws.receive()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    return app, seen


@pytest.mark.parametrize("compression", COMPRESSION)
def test_echo_against_cyserve_server(run, compression):
    async def main():
        app, seen = cyserve_app()
        async with serving(app) as server, Client() as client:
            base = f"ws://127.0.0.1:{server.port}"
            async with client.websocket(base + "/echo", compression=compression) as ws:
                assert ws.compressed is compression
                for message in ("héllo", b"\x00\xff", BIG, BIG_TEXT, "", b""):
                    await ws.send(message)
                    assert await ws.receive() == message
                await ws.send_json([1, {"two": 3}])
                assert await ws.receive_json() == [1, {"two": 3}]
                assert 0 <= await ws.ping(b"from the client") < 5
                await ws.send("ping")            # the server pings us; the role answers
                assert (await ws.receive_text()).startswith("rtt ")
            assert ws.close_code == 1000
            await _until(lambda: seen)
            assert seen == [(1000, "")]
            async with client.websocket(base + "/rooms/lobby?user=ann", subprotocols=["chat.v1"],
                                        headers={"X-Extra": "yes"},
                                        compression=compression) as ws:
                assert ws.subprotocol == "chat.v1" and ws.headers["x-room"] == "lobby"
                assert await ws.receive_json() == {"room": "lobby", "user": "ann", "x": "yes",
                                                   "offered": ["chat.v1"],
                                                   "compressed": compression}
                # the handler returned: the server closes normally, the iteration just ends
                assert [m async for m in ws] == []
                assert ws.close_code == 1000
    run(main)


def test_close_codes_both_ways_against_cyserve_server(run):
    async def main():
        app, seen = cyserve_app()
        async with serving(app) as server, Client() as client:
            base = f"ws://127.0.0.1:{server.port}/echo"
            async with client.websocket(base) as ws:
                await ws.send("close 4010 server done")
                with pytest.raises(WebSocketDisconnect) as info:
                    await ws.receive()
                assert (info.value.code, info.value.reason) == (4010, "server done")
                with pytest.raises(WebSocketDisconnect):
                    await ws.send("after the close")
            async with client.websocket(base) as ws:
                await ws.close(4011, "client done")
                assert ws.close_code == 4011     # the server's echo of our code (RFC 6455 §5.5.1)
                await ws.close()                 # closing again only waits
            await _until(lambda: len(seen) == 2)
            # each side ends with the peer's frame: our echo of 4010 (no reason), then 4011
            assert seen == [(4010, ""), (4011, "client done")]
    run(main)


def test_refusals_by_cyserve_server(run):
    async def main():
        app, _ = cyserve_app()
        async with serving(app) as server, Client() as client:
            base = f"ws://127.0.0.1:{server.port}"
            with pytest.raises(HTTPStatusError) as info:
                async with client.websocket(base + "/refuse"):
                    pass
            assert info.value.status == 403 and await info.value.response.read() == b"bad origin"
            with pytest.raises(HTTPStatusError) as info:
                async with client.websocket(base + "/none"):
                    pass
            assert info.value.status == 403
            with pytest.raises(HTTPStatusError) as info:
                async with client.websocket(base + "/missing"):
                    pass
            assert info.value.status == 404
            assert len(server.state.connections) <= 1   # refused connections are not kept
    run(main)


def test_message_limits_between_cyserve_client_and_server(run):
    async def main():
        app, seen = cyserve_app()
        async with serving(app) as server, Client() as client:
            base = f"ws://127.0.0.1:{server.port}"
            # the client's limit: the server's 2 MiB message closes with 1009 (RFC 6455 §7.4.1)
            async with client.websocket(base + "/big") as ws:
                with pytest.raises(WebSocketDisconnect) as info:
                    await ws.receive()
                assert info.value.code == 1009
            await _until(lambda: seen)
            assert seen == [1009]
            # the server's limit (1 MiB by default)
            async with client.websocket(base + "/echo",
                                        limits=WebSocketLimits(max_message_bytes=4 << 20)) as ws:
                await ws.send(b"y" * (2 * 1024 * 1024))
                with pytest.raises(WebSocketDisconnect) as info:
                    await ws.receive()
                assert info.value.code == 1009
    run(main)


def test_graceful_shutdown_of_cyserve_server_ends_the_iteration(run):
    async def main():
        app, seen = cyserve_app()
        server_cm = serving(app)
        server = await server_cm.__aenter__()
        try:
            async with Client() as client:
                async with client.websocket(f"ws://127.0.0.1:{server.port}/echo") as ws:
                    await ws.send("hi")
                    assert await ws.receive() == "hi"
                    shutdown = asyncio.ensure_future(server.shutdown(timeout_s=3.0))
                    assert [m async for m in ws] == []   # 1001 is a normal end
                    assert ws.close_code == 1001
                    await asyncio.wait_for(shutdown, 5)
        finally:
            await server_cm.__aexit__(None, None, None)
    run(main)


def test_wss_against_cyserve_server(run, tls):
    async def main():
        app, _ = cyserve_app()
        async with serving_tls(app, tls["server_ctx"]) as server:
            async with Client(verify=tls["ca_path"]) as client:
                async with client.websocket(f"wss://localhost:{server.port}/echo") as ws:
                    assert ws.compressed
                    await ws.send(BIG)
                    assert await ws.receive() == BIG
    run(main)


async def _until(predicate: Any, timeout_s: float = 3.0) -> None:
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(wait(), timeout_s)
