"""cyserve side of bench/ws: ``/`` echoes, ``/room`` joins the room, ``/publish`` broadcasts.

The App's defaults (WebSocketLimits(): permessage-deflate when the client offers it, 1 MiB
messages, pings every 20 s), served by ``App.run`` on uvloop like every server in bench/ws.  The
broadcast is ``cyserve.websocket.broadcast(sockets, message)``: one frame built once, written to
every member, members above their write high water skipped.

Run: python bench/ws/servers/cyserve_server.py --port 8000  (the harness starts it for you).
"""
from __future__ import annotations

import argparse

from cyserve import App, WebSocket, WebSocketDisconnect
from cyserve.websocket import broadcast

ROOM: set[WebSocket] = set()

app = App()


@app.websocket("/")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        async for message in ws:
            await ws.send(message)
    except WebSocketDisconnect:
        pass  # the load generator drops its connections at the end of a run


@app.websocket("/room")
async def room(ws: WebSocket) -> None:
    await ws.accept()
    ROOM.add(ws)
    try:
        async for _ in ws:
            pass
    except WebSocketDisconnect:
        pass
    finally:
        ROOM.discard(ws)


@app.websocket("/publish")
async def publish(ws: WebSocket) -> None:
    """Each message goes to every room member, then b"ack" goes back to the publisher."""
    await ws.accept()
    try:
        async for message in ws:
            broadcast(ROOM, message)
            await ws.send(b"ack")
    except WebSocketDisconnect:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app.run(host=args.host, port=args.port)
