"""The ASGI apps of bench/e2e/asgi: no framework, one module served unchanged by cyserve's adapter,
uvicorn and granian (run.py starts them through their command lines; see README.md).

``app``: the raw ASGI 3 app.
- ``GET /plaintext``: ``Hello, World!`` (text/plain), bench/e2e's plaintext;
- ``GET /json``: ``{"message":"Hello, World!"}`` serialised per request with the stdlib, as
  bench/e2e's uvicorn app does;
- a WebSocket on any path echoes each message as it came (text as text, bytes as binary), the
  peer of bench/ws/echo.py's load generator;
- anything else is 404; lifespan startup and shutdown are answered (granian's ``asgi``
  interface always runs them; the others under ``--lifespan auto``).

``noop``: a no-op ASGI app for the FastAPI comparison: every HTTP request gets the exact status,
content type and body ``examples/fastapi_app.py`` answers on ``GET /products/3``, precomputed,
with no routing, validation or serialisation.  Its CPU per response on a server is that server's
own cost (parse, scope, two ``send`` calls, write) for the same bytes on the wire, so subtracting
it from the FastAPI route's leaves the framework's share.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PLAINTEXT = b"Hello, World!"
_TEXT = [(b"content-type", b"text/plain"), (b"content-length", str(len(PLAINTEXT)).encode())]
_NOT_FOUND = [(b"content-type", b"text/plain"), (b"content-length", b"9")]
# What examples/fastapi_app.py answers on GET /products/3 (run.py checks both answer the same).
PRODUCT_3 = (b'{"id":3,"name":"product 3","price_cents":399,"in_stock":false,'
             b'"tags":["catalogue","odd"]}')
_PRODUCT_FIELDS = [(b"content-length", str(len(PRODUCT_3)).encode()),
                   (b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        path = scope["path"]
        if path == "/plaintext":
            await send({"type": "http.response.start", "status": 200, "headers": _TEXT})
            await send({"type": "http.response.body", "body": PLAINTEXT})
        elif path == "/json":
            body = json.dumps({"message": "Hello, World!"}, separators=(",", ":")).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        else:
            await send({"type": "http.response.start", "status": 404, "headers": _NOT_FOUND})
            await send({"type": "http.response.body", "body": b"Not Found"})
    elif kind == "websocket":
        await _echo(receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)


async def _echo(receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect: the peer closed or left
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def noop(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        await send({"type": "http.response.start", "status": 200, "headers": _PRODUCT_FIELDS})
        await send({"type": "http.response.body", "body": PRODUCT_3})
    elif kind == "lifespan":
        await _lifespan(receive, send)
