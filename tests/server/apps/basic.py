"""What the process tests serve: which process answered, a slow request, a streamed one."""
from __future__ import annotations

import asyncio
import os

from cyserve import App, Request, Response

app = App()


@app.get("/pid")
async def pid(request: Request) -> Response:
    return Response(str(os.getpid()).encode(), content_type="text/plain")


@app.get("/slow")
async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query.get("s", "1")))
    return Response(b"done " + str(os.getpid()).encode(), content_type="text/plain")
