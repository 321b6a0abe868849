"""The server every client is measured against: a cyserve app in its own process.

``/small``: a 5-byte text body (small GET).  ``/big?mb=N``: N MiB streamed in 256 KiB pieces of
one preallocated buffer, with Content-Length (so the server costs as little as possible).
Prints ``READY <port>`` once listening.
"""
from __future__ import annotations

import argparse
import asyncio
import signal

from cyserve import App, StreamResponse
from cyserve.server import new_event_loop, serve

PIECE = b"\0" * (256 * 1024)


def make_app() -> App:
    app = App(server_header=None)

    @app.get("/small")
    async def small(request):
        return "hello"

    @app.get("/big")
    async def big(request):
        mb = int(request.query.get("mb", "1024"))

        async def gen():
            for _ in range(mb * 4):
                yield PIECE
        return StreamResponse(gen(), content_type="application/octet-stream",
                              content_length=mb * 1024 * 1024)

    return app


async def main(port: int) -> None:
    server = await serve(make_app(), "127.0.0.1", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"READY {server.port}", flush=True)
    await stop.wait()
    await server.shutdown(timeout_s=1.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main(args.port))
