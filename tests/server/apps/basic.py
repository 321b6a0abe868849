"""What the process tests serve: which process answered, a slow request, an endless SSE
stream and a WebSocket echo (both must end cleanly when their worker drains)."""
from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator

from cyserve import App, Request, Response
from cyserve.sse import SSEResponse
from cyserve.websocket import WebSocket

app = App()


@app.get("/pid")
async def pid(request: Request) -> Response:
    return Response(str(os.getpid()).encode(), content_type="text/plain")


@app.get("/slow")
async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query.get("s", "1")))
    return Response(b"done " + str(os.getpid()).encode(), content_type="text/plain")


@app.get("/events")
async def events(request: Request) -> SSEResponse:
    async def forever() -> AsyncIterator[str]:
        count = 0
        while True:
            yield f"tick {count}"
            count += 1
            await asyncio.sleep(0.1)
    return SSEResponse(forever(), ping_interval_s=None)


@app.websocket("/echo")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send(message)
