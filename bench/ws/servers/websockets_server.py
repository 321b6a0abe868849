"""websockets side of bench/ws: ``/`` echoes, ``/room`` joins the room, ``/publish`` broadcasts.

websockets' asyncio API with its defaults (permessage-deflate offered back when the client asks,
max_size 1 MiB, pings every 20 s), on uvloop like every server in bench/ws.  The broadcast is its
own ``broadcast(connections, message)``, which skips connections that are not writable.

Run: python bench/ws/servers/websockets_server.py --port 8000  (the harness starts it for you).
"""
from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

ROOM: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else "/"
    try:
        if path == "/":
            async for message in ws:
                await ws.send(message)
        elif path == "/room":
            ROOM.add(ws)
            try:
                await ws.wait_closed()
            finally:
                ROOM.discard(ws)
        elif path == "/publish":
            async for message in ws:
                broadcast(ROOM, message)
                await ws.send(b"ack")
        else:
            await ws.close(1008, "unknown path")
    except ConnectionClosed:
        pass


async def main(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(handler, host, port, backlog=4096):
        print(f"websockets listening on ws://{host}:{port}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port))
