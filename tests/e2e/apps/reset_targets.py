"""The server of test_hostile_connections' reset test, in a process of its own so that its
resident memory (VmRSS) is the server's alone and can be read from outside.

usage: python reset_targets.py uvloop|asyncio

Prints ``port <n>`` once listening; shuts down gracefully when its stdin closes (and in any
case after LIFETIME_S, so a test that died leaves nothing behind).  ``GET /counts`` reports
how far the hostile requests got (handlers entered, handlers still running, producers closed)
and the live connections, so the test knows when a round has settled.  Nothing here forces a
garbage collection: memory is measured as an outside observer sees it.
"""
from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any, AsyncIterator

from cyserve import App, Response, StreamResponse, serve

LIFETIME_S = 120.0
# The listening socket's send buffer, inherited by every connection: fixed and small (the kernel
# would grow it to a few MiB), so that a response the client does not read stays mostly in the
# server's transport, where a reset must free it.
SEND_BUFFER_BYTES = 32 * 1024
BIG = b"x" * (256 * 1024)
CHUNK = b"y" * (64 * 1024)

counts = {"slow": 0, "upload": 0, "big": 0, "stream": 0, "stream_closed": 0, "running": 0}
app = App()
server: Any = None


@app.get("/slow")
async def slow(request: Any) -> str:
    counts["slow"] += 1
    counts["running"] += 1
    try:
        await asyncio.sleep(0.2)  # the client resets while the handler is suspended here
    finally:
        counts["running"] -= 1
    return "ok"


@app.post("/upload")
async def upload(request: Any) -> dict[str, int]:
    counts["upload"] += 1
    counts["running"] += 1
    try:
        data = await request.body()  # the client resets mid-body: this raises
    finally:
        counts["running"] -= 1
    return {"size": len(data)}


@app.get("/big")
async def big(request: Any) -> Response:
    counts["big"] += 1
    return Response(BIG, content_type="application/octet-stream")


@app.get("/stream")
async def stream(request: Any) -> StreamResponse:
    counts["stream"] += 1

    async def produce() -> AsyncIterator[bytes]:
        counts["running"] += 1
        try:
            for _ in range(256):  # 16 MiB: the client never gets near the end
                # A producer that awaits between chunks, as one reading a file or a database
                # does.  (One that never awaits keeps writing into a reset connection until
                # connection_lost runs: test_producer_stops_at_its_first_write_after_the_client_reset.)
                await asyncio.sleep(0)
                yield CHUNK
        finally:
            counts["running"] -= 1
            counts["stream_closed"] += 1

    return StreamResponse(produce(), content_type="application/octet-stream")


@app.get("/counts")
async def report(request: Any) -> dict[str, int]:
    return dict(counts, connections=len(server.state.connections))


async def main() -> None:
    global server
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    listener.bind(("127.0.0.1", 0))
    server = await serve(app, sock=listener)
    stdin_closed = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: stdin_closed.done() or stdin_closed.set_result(None))
    print("port", server.port, flush=True)
    try:
        await asyncio.wait_for(stdin_closed, LIFETIME_S)
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_reader(sys.stdin.fileno())
        await server.shutdown(timeout_s=2.0)


if __name__ == "__main__":
    if sys.argv[1] == "uvloop":
        import uvloop
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())
