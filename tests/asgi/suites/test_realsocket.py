"""The real-socket TestClient itself, against the adapter, on both loops: what the suites'
verdicts rest on.  A request must really cross a socket to a cyserve server (the app sees the
connection's addresses and the server writes its own headers), TLS must be real for an https
base URL, what the app raised must reach the test, and WebSocket sessions must map frames and
close codes to TestClient's messages.  No network, a few seconds: part of the default run."""
from __future__ import annotations

import warnings
from typing import Any

import pytest

with warnings.catch_warnings():
    # Starlette's TestClient warns when it is built on httpx rather than httpx2; the suites'
    # subprocess names httpx2 (realsocket.httpx2), this process leaves sys.modules alone.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from .realsocket.client import RealSocketTestClient, close_all

from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

Scope = dict[str, Any]


@pytest.fixture(params=["uvloop", "asyncio"])
def loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The server thread's loop (``realsocket.server.loop_name``); every client stopped after."""
    monkeypatch.setenv("CYSERVE_SUITE_LOOP", request.param)
    monkeypatch.setenv("CYSERVE_SUITE_SERVER", "cyserve")
    yield request.param
    close_all()


async def _echo_scope(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        scope["state"]["started"] = True
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    import json

    body = json.dumps({
        "client": scope["client"][0], "server_port": scope["server"][1], "scheme": scope["scheme"],
        "host": dict(scope["headers"]).get(b"host", b"").decode(), "path": scope["path"],
        "raw_path": scope["raw_path"].decode(), "query": scope["query_string"].decode(),
        "state": dict(scope.get("state") or {}),
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def test_requests_cross_a_socket_to_a_cyserve_server(loop: str) -> None:
    client = RealSocketTestClient(_echo_scope)
    response = client.get("/a%2Fb?x=1")
    seen = response.json()
    assert seen["client"] == "127.0.0.1"            # the peer, not TestClient's "testclient"
    port = client._server(False).port
    assert seen["server_port"] == port != 80           # the listening socket, not the URL's port
    assert response.headers["server"] == "cyserve"     # written by the server, not the app
    assert seen["host"] == "testserver" and seen["scheme"] == "http"
    assert seen["raw_path"] == "/a%2Fb" and seen["path"] == "/a/b" and seen["query"] == "x=1"
    client.close()


def test_https_base_url_is_served_over_tls(loop: str) -> None:
    client = RealSocketTestClient(_echo_scope, base_url="https://www.example.org")
    seen = client.get("/").json()
    assert seen["scheme"] == "https" and seen["host"] == "www.example.org"
    client.close()


def test_what_the_app_raised_is_raised_in_the_test(loop: str) -> None:
    client = RealSocketTestClient(_echo_scope)
    with pytest.raises(RuntimeError, match="boom"):
        client.get("/boom")
    # The next request works (the connection the server closed is not reused).
    assert client.get("/").status_code == 200
    quiet = RealSocketTestClient(_echo_scope, raise_server_exceptions=False)
    assert quiet.get("/boom").status_code == 500
    client.close()
    quiet.close()


def test_lifespan_runs_only_inside_with(loop: str) -> None:
    client = RealSocketTestClient(_echo_scope)
    assert client.get("/").json()["state"] == {}
    with client:
        assert client.get("/").json()["state"] == {"started": True}


async def _websocket_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()
    if scope["path"] == "/deny":
        await send({"type": "websocket.http.response.start", "status": 404, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"nope"})
        return
    await send({"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x-extra", b"1")]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "bye":
            await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
            return
        await send({"type": "websocket.send", **{k: v for k, v in message.items() if k in ("text", "bytes")}})


def test_websocket_sessions_map_frames_and_closes(loop: str) -> None:
    client = RealSocketTestClient(_websocket_app)
    with client.websocket_connect("/ws", subprotocols=["chat", "other"]) as session:
        assert session.accepted_subprotocol == "chat"
        assert session.extra_headers is not None and (b"x-extra", b"1") in session.extra_headers
        session.send_text("hello")
        assert session.receive_text() == "hello"
        session.send_bytes(b"\x00\x01")
        assert session.receive_bytes() == b"\x00\x01"
        session.send_json({"a": [1, 2]})
        assert session.receive_json() == {"a": [1, 2]}
        session.send_text("bye")
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
        assert (closed.value.code, closed.value.reason) == (4001, "bye")
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect("/deny"):
            pass
    assert denied.value.status_code == 404 and denied.value.content == b"nope"
    client.close()
