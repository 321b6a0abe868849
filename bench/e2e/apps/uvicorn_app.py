"""uvicorn side of bench/e2e: a raw ASGI 3 app (no framework) with the routes of cyserve_app.py.

Run: python bench/e2e/apps/uvicorn_app.py --port 8000  (the harness starts it for you).
Served as `uvicorn --loop uvloop --http httptools --no-access-log --log-level warning --workers 1`,
or through uvicorn's command line (run.py's --workers, --access-log, --proxy-headers modes):
`uvicorn uvicorn_app:app --app-dir bench/e2e/apps --loop uvloop --http httptools --lifespan off`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

STREAM_CHUNK_BYTES = 64 * 1024
STREAM_TOTAL_BYTES = 600 * 1024 * 1024


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # served with lifespan="off": only HTTP scopes arrive
        raise RuntimeError(f"unexpected scope type {scope['type']!r}")
    path = scope["path"]
    if path == "/plaintext":
        await _respond(send, 200, b"text/plain", b"Hello, World!")
    elif path == "/json":
        # Serialised per request, like cyserve does for a returned dict.
        body = json.dumps({"message": "Hello, World!"}, separators=(",", ":")).encode()
        await _respond(send, 200, b"application/json", body)
    elif path == "/client":  # the client address after uvicorn's proxy-headers middleware
        client = scope.get("client")
        await _respond(send, 200, b"text/plain", (client[0] if client else "-").encode())
    elif path == "/stream":
        await _stream(receive, send)
    else:
        await _respond(send, 404, b"text/plain", b"Not Found")


async def _respond(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(receive: Receive, send: Send) -> None:
    # uvicorn's send() returns silently once the client is gone, so an ASGI app must watch for
    # http.disconnect itself to stop producing (as Starlette's StreamingResponse does); the
    # sleep(0) lets the watcher run, since send() does not yield unless writing is paused.
    gone = asyncio.Event()

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch_disconnect())
    produced_bytes = 0
    try:
        headers = [(b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        while produced_bytes < STREAM_TOTAL_BYTES and not gone.is_set():
            produced_bytes += STREAM_CHUNK_BYTES
            await send({"type": "http.response.body", "body": b"x" * STREAM_CHUNK_BYTES, "more_body": True})
            await asyncio.sleep(0)
        if not gone.is_set():
            await send({"type": "http.response.body", "body": b""})
    finally:
        watcher.cancel()
        complete = produced_bytes >= STREAM_TOTAL_BYTES
        print(f"stream-end produced_bytes={produced_bytes} complete={complete}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", workers=1, lifespan="off")
