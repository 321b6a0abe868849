"""The echo server Autobahn's fuzzingclient drives (tests/ws/test_autobahn.py starts it).

Every message comes back as it came (text as text, binary as binary); limits raised so the 16 MiB
messages of cases 9.1.6/9.2.6 fit, compression on (cases 12 and 13 negotiate permessage-deflate,
RFC 7692), and no keepalive pings, which Autobahn would record as unexpected events.

Run: python tests/ws/echo_app.py [--port 0] [--loop uvloop|asyncio]; it prints
``listening on PORT`` once it accepts connections and shuts down gracefully on SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any, Awaitable, Callable

from cyserve import App, WebSocket
from cyserve.config import WebSocketLimits
from cyserve.server import Server, new_event_loop, serve

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
LIMITS = WebSocketLimits(max_message_bytes=MAX_MESSAGE_BYTES, max_frame_bytes=MAX_MESSAGE_BYTES,
                         ping_interval_s=None, compression=True, compression_min_bytes=0)

app = App(websocket=LIMITS)


@app.websocket("/")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send(message)


async def serve_until_signalled(start: Callable[[str, int], Awaitable[Server]], host: str,
                                port: int) -> None:
    """``start(host, port)``, print ``listening on PORT``, and shut the server down gracefully on
    SIGTERM or SIGINT."""
    server = await start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {server.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.shutdown()


def script(description: str | None, start: Callable[[str, int], Awaitable[Server]],
           argv: list[str] | None = None) -> None:
    """The command line of an echo server: ``--host``, ``--port`` (0: any free port, printed),
    ``--loop uvloop|asyncio``; serves ``start(host, port)`` until a stop signal."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    factory: Any = new_event_loop if args.loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve_until_signalled(start, args.host, args.port))


if __name__ == "__main__":
    script(__doc__, lambda host, port: serve(app, host, port))
