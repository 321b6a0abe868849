"""The ``websocket`` scope and messages over cyserve's WebSocket role, against the ``websockets``
client (an implementation nobody here wrote), on uvloop and stdlib asyncio: the scope, accept
with a subprotocol and headers, text and bytes both ways, close codes and reasons both ways,
disconnects, refusals (close before accept: 403; ``websocket.http.response``; no answer: 500),
1011 for an app error, 1009 over the limit, and 1001 on graceful shutdown."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import cyserve.asgi
from cyserve.asgi import ASGIHost
from cyserve.config import WebSocketLimits
from tests.asgi.asgi_support import no_lifespan, serving


async def _until(predicate: Any, timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


def url(server: Any, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def echo_app(seen: list[Any]) -> Any:
    """Accepts (the last offered subprotocol, a header), echoes text and bytes, closes with
    4000 + the message when told "close:<reason>"; keeps the scope and every message."""
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        seen.append(scope)
        seen.append(await receive())
        offered = scope["subprotocols"]
        await send({"type": "websocket.accept", "subprotocol": offered[-1] if offered else None,
                    "headers": [(b"x-room", b"lobby")]})
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None and text.startswith("close:"):
                await send({"type": "websocket.close", "code": 4000, "reason": text[6:]})
                return
            await send({"type": "websocket.send", **{k: v for k, v in message.items()
                                                     if k in ("text", "bytes")}})
    return app


def test_scope_accept_and_messages_both_ways(run):
    seen: list[Any] = []

    async def main() -> None:
        async with serving(echo_app(seen)) as server:
            async with connect(url(server, "/ws/r%C3%A9?token=1"), subprotocols=["chat.v1", "chat.v2"],
                               compression=None) as ws:
                assert ws.subprotocol == "chat.v2"
                assert ws.response.headers["x-room"] == "lobby"
                await ws.send("hello")
                assert await ws.recv() == "hello"
                await ws.send(b"\x00\xffbinary")
                assert await ws.recv() == b"\x00\xffbinary"
                await ws.send("é" * 70000)   # a long text message, several frames' worth
                assert await ws.recv() == "é" * 70000
        scope = seen[0]
        assert scope["type"] == "websocket" and scope["scheme"] == "ws"
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
        assert scope["http_version"] == "1.1" and "method" not in scope
        assert scope["path"] == "/ws/ré" and scope["raw_path"] == b"/ws/r%C3%A9"
        assert scope["query_string"] == b"token=1"
        assert scope["subprotocols"] == ["chat.v1", "chat.v2"]
        assert (b"sec-websocket-protocol", b"chat.v1, chat.v2") in scope["headers"]
        assert scope["extensions"] == {"websocket.http.response": {}}
        assert scope["server"] == ("127.0.0.1", server.port) and scope["client"][0] == "127.0.0.1"
        assert seen[1] == {"type": "websocket.connect"}
        assert seen[2] == {"type": "websocket.receive", "text": "hello"}
        assert seen[3] == {"type": "websocket.receive", "bytes": b"\x00\xffbinary"}
        # The client closed normally: the app hears the code and the reason.
        assert seen[-1] == {"type": "websocket.disconnect", "code": 1000, "reason": ""}
    run(main)


def test_close_codes_and_reasons_both_ways(run):
    seen: list[Any] = []

    async def main() -> None:
        async with serving(echo_app(seen)) as server:
            async with connect(url(server)) as ws:
                await ws.send("close:see you")
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "see you")
            async with connect(url(server)) as ws:
                await ws.close(4002, "done here")
            await _until(lambda: seen[-1]["type"] == "websocket.disconnect")
            assert seen[-1] == {"type": "websocket.disconnect", "code": 4002, "reason": "done here"}
            async with connect(url(server)) as ws:
                ws.transport.abort()          # no close frame: the connection just drops
            await _until(lambda: seen[-1].get("code") == 1006)
    run(main)


def test_close_before_accept_is_403_and_http_response_denies(run):
    calls: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        calls.append(scope["path"])
        assert await receive() == {"type": "websocket.connect"}
        if scope["path"] == "/close":
            await send({"type": "websocket.close"})
            # No WebSocket was opened: 1006 and no reason (no close frame went either way).
            assert await receive() == {"type": "websocket.disconnect", "code": 1006}
            calls.append("refused and told")
            return
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"www-authenticate", b"Bearer"), (b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"token"})

    async def main() -> None:
        async with serving(app) as server:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url(server, "/close")):
                    pass
            assert refused.value.response.status_code == 403
            with pytest.raises(InvalidStatus) as denied:
                async with connect(url(server, "/deny")):
                    pass
            response = denied.value.response
            assert response.status_code == 401 and response.body == b"no token"
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.headers["content-type"] == "text/plain"
        assert calls == ["/close", "refused and told", "/deny"]
    run(main)


def test_no_answer_is_500_an_error_after_accept_is_1011(run, caplog):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        await receive()
        if scope["path"] == "/silent":
            return
        await send({"type": "websocket.accept"})
        await receive()
        raise KeyError("the handler's bug")

    async def main() -> None:
        async with serving(app) as server:
            with pytest.raises(InvalidStatus) as silent:
                async with connect(url(server, "/silent")):
                    pass
            assert silent.value.response.status_code == 500
            async with connect(url(server, "/fails")) as ws:
                await ws.send("trigger")
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    with caplog.at_level(logging.ERROR):
        run(main)
    assert any(r.exc_info and isinstance(r.exc_info[1], KeyError) for r in caplog.records)


def test_a_bad_handshake_never_reaches_the_app(run):
    calls: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        calls.append(scope)

    async def main() -> None:
        async with serving(app) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 8\r\n\r\n")
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.close()
        # RFC 6455 §4.2.2: another version is 426 naming the one served.
        assert raw.startswith(b"HTTP/1.1 426 ") and b"Sec-WebSocket-Version: 13" in raw
        assert calls == []
    run(main)


def test_a_malformed_handshake_is_400_and_closes(run):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            raise AssertionError("never called for a malformed handshake")

    async def main() -> None:
        async with serving(app) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            # A handshake declaring a body it never sends (RFC 6455 §4.1: it has none).
            writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\n")
            # The server answers and ends the connection: read() returns at its end.
            raw = await asyncio.wait_for(reader.read(), 5)
            writer.close()
        assert raw.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in raw
    run(main)


def test_limits_apply_as_for_native_handlers(run):
    seen: list[Any] = []

    async def main() -> None:
        host = ASGIHost(echo_app(seen), websocket=WebSocketLimits(max_message_bytes=1024))
        async with serving(host) as server:
            async with connect(url(server), max_size=None) as ws:
                await ws.send("x" * 1000)
                assert await ws.recv() == "x" * 1000
                await ws.send("y" * 5000)
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                # RFC 6455 §7.4.1: 1009, a message too big to process.
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            await _until(lambda: seen[-1]["type"] == "websocket.disconnect")
            assert seen[-1]["code"] == 1009
    run(main)


def test_send_after_the_peer_left_raises_oserror(run):
    outcome: list[BaseException] = []
    gone = {"flag": False}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.accept"})
        await _until(lambda: gone["flag"])
        await asyncio.sleep(0.2)
        try:
            for _ in range(100):
                await send({"type": "websocket.send", "text": "tick"})
                await asyncio.sleep(0.01)
        except OSError as exc:
            outcome.append(exc)

    async def main() -> None:
        async with serving(app) as server:
            async with connect(url(server)) as ws:
                ws.transport.abort()
            gone["flag"] = True
            await _until(lambda: outcome)
        assert isinstance(outcome[0], OSError)
    run(main)


def test_shutdown_waits_for_an_app_still_at_work_after_its_socket_closed(run):
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            events.append("lifespan shutdown")
            return
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        await asyncio.sleep(0.3)      # saving what the session did, say
        events.append("app done")

    async def main() -> None:
        server = await cyserve.asgi.serve(app, "127.0.0.1", 0)
        try:
            async with connect(url(server)):
                pass
            await asyncio.sleep(0.05)
        finally:
            await server.shutdown(timeout_s=5)
        assert events == ["app done", "lifespan shutdown"]
    run(main)


def test_a_handshake_left_unanswered_is_refused_when_the_server_drains(run):
    heard: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        await receive()
        heard.append(await receive())    # neither accepted nor refused: nothing to hear yet

    async def main() -> None:
        server = await cyserve.asgi.serve(app, "127.0.0.1", 0)
        try:
            attempt = asyncio.ensure_future(connect(url(server)).__aenter__())
            await asyncio.sleep(0.2)
            assert heard == []
            await server.shutdown(timeout_s=5)
            with pytest.raises(InvalidStatus) as refused:
                await asyncio.wait_for(attempt, 5)
        finally:
            await server.shutdown(timeout_s=2)
        # RFC 9110 §15.6.4: the server is going away; the app hears the handshake will not be.
        assert refused.value.response.status_code == 503
        assert heard == [{"type": "websocket.disconnect", "code": 1006}]
    run(main)


def test_graceful_shutdown_closes_websockets_with_1001(run):
    seen: list[Any] = []

    async def main() -> None:
        server = await cyserve.asgi.serve(echo_app(seen), "127.0.0.1", 0)
        try:
            async with connect(url(server)) as ws:
                await ws.send("ping")
                assert await ws.recv() == "ping"
                stopping = asyncio.ensure_future(server.shutdown(timeout_s=5))
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                # RFC 6455 §7.4.1: 1001, the server is going away.
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
                await stopping
        finally:
            await server.shutdown(timeout_s=2)
        assert seen[-1]["type"] == "websocket.disconnect" and seen[-1]["code"] == 1001
    run(main)
