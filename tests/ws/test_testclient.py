"""TestClient.websocket: a sync context manager in the sync form (plain calls), an async one in
the async form, with the same methods as a handler's WebSocket."""
from __future__ import annotations

from typing import Any

import pytest

from cyserve import App, WebSocket, WebSocketDisconnect, WebSocketLimits
from cyserve.errors import HTTPStatusError
from cyserve.testing import SyncWebSocket, TestClient


def make_app() -> tuple[App, list[Any]]:
    app = App(websocket=WebSocketLimits(close_timeout_s=1.0))
    ends: list[Any] = []

    @app.websocket("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept(subprotocol=ws.subprotocols[0] if ws.subprotocols else None,
                        headers={"x-token": ws.headers.get("x-token", "-")})
        try:
            async for message in ws:
                if message == "close":
                    await ws.close(4000, "asked to")
                    break
                if message == "bye":
                    return                      # returning closes with 1000
                await ws.send(message)
        except WebSocketDisconnect as exc:
            ends.append(exc.code)
            raise
        ends.append(ws.close_code)

    @app.websocket("/private")
    async def private(ws: WebSocket) -> None:
        await ws.reject(401, b"who are you")

    return app, ends


def test_sync_websocket():
    app, ends = make_app()
    with TestClient(app) as client:
        with client.websocket("/echo", subprotocols=["chat.v1"], headers={"x-token": "t"}) as ws:
            assert isinstance(ws, SyncWebSocket)
            assert ws.subprotocol == "chat.v1" and ws.headers["x-token"] == "t"
            ws.send_text("héllo")
            assert ws.receive_text() == "héllo"
            ws.send_bytes(b"\x00\x01")
            assert ws.receive_bytes() == b"\x00\x01"
            ws.send_json({"n": 1})
            assert ws.receive_json() == {"n": 1}
            ws.send("plain")
            assert ws.receive() == "plain"
            assert ws.ping(b"rtt") >= 0
            ws.send("bye")
            assert list(ws) == []               # the handler returned: a normal close
            assert ws.close_code == 1000 and ws.closed
        assert ends == []
        with client.websocket("/echo") as ws:
            ws.send("close")
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive()
            assert (info.value.code, info.value.reason) == (4000, "asked to")
        with client.websocket("/echo") as ws:
            ws.send("a")
            assert ws.receive() == "a"
            ws.close(4001, "the test is done")
            assert ws.close_code == 4001
        with pytest.raises(HTTPStatusError) as refused:
            with client.websocket("/private"):
                pass
        assert refused.value.status == 401
        # leaving the block closes with 1000
        with client.websocket("/echo") as ws:
            ws.send("x")
            assert ws.receive() == "x"
        assert ws.close_code == 1000
    assert ends == [4000, 4001, 1000]


def test_sync_websocket_starts_the_test_client():
    app, _ = make_app()
    client = TestClient(app)
    try:
        with client.websocket("/echo") as ws:   # the first use starts the sync form
            ws.send("first")
            assert ws.receive() == "first"
    finally:
        client.close()


def test_async_websocket(run):
    async def main():
        app, ends = make_app()
        async with TestClient(app) as client:
            async with client.websocket("/echo", subprotocols=["chat.v2"]) as ws:
                assert ws.subprotocol == "chat.v2"
                await ws.send_text("async")
                assert await ws.receive_text() == "async"
                await ws.send_json([1, 2])
                assert await ws.receive_json() == [1, 2]
                assert await ws.ping() >= 0
                await ws.send("bye")
                assert [m async for m in ws] == []
            with pytest.raises(HTTPStatusError) as refused:
                async with client.websocket("/private"):
                    pass
            assert refused.value.status == 401
            assert await refused.value.response.read() == b"who are you"
            async with client.websocket("/echo") as ws:
                await ws.send("x")
                assert await ws.receive() == "x"
        assert ends == [1000]
    run(main)
