"""aiohttp side of bench/ws: ``/`` echoes, ``/room`` joins the room, ``/publish`` broadcasts.

aiohttp.web with its defaults (permessage-deflate accepted when the client offers it), on uvloop
like every server in bench/ws.  aiohttp has no broadcast helper: the publish handler awaits
``send_bytes`` on each member in turn, which is how its documentation's chat example does it.

Run: python bench/ws/servers/aiohttp_server.py --port 8000  (the harness starts it for you).
"""
from __future__ import annotations

import argparse
import asyncio

import uvloop
from aiohttp import WSMsgType, web

ROOM: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("room", set)


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def room(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    members = request.app[ROOM]
    members.add(ws)
    try:
        async for _ in ws:
            pass
    finally:
        members.discard(ws)
    return ws


async def publish(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    members = request.app[ROOM]
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            for member in list(members):
                if not member.closed:
                    await member.send_bytes(msg.data)
            await ws.send_bytes(b"ack")
    return ws


async def close_all(app: web.Application) -> None:
    await asyncio.gather(*(ws.close(code=1001) for ws in list(app[ROOM])), return_exceptions=True)


def make_app() -> web.Application:
    app = web.Application()
    app[ROOM] = set()
    app.on_shutdown.append(close_all)
    app.add_routes([web.get("/", echo), web.get("/room", room), web.get("/publish", publish)])
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, backlog=4096,
                print=lambda line: print(line, flush=True), loop=uvloop.new_event_loop())
