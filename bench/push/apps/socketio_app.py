"""python-socketio side of bench/push/redis_fanout.py: an ``AsyncServer`` whose client manager is
``AsyncRedisManager(BENCH_PUSH_REDIS)`` (its documented way to run several server processes:
every emit goes through Redis pub/sub to every process), served by aiohttp on uvloop.

Every client joins the room ``bench`` in its connect handler; an external process emits to the
room through its own ``AsyncRedisManager(url, write_only=True)`` (the documented way to emit from
outside the servers).  Otherwise the library's defaults (ping every 25 s, both transports
offered; the benchmark's clients open the WebSocket transport directly).  ``GET /plaintext``
tells the harness the server is up.

Run: BENCH_PUSH_REDIS=redis://127.0.0.1:6379/0 python bench/push/apps/socketio_app.py --port 8000
"""
from __future__ import annotations

import argparse
import os
from typing import Any

import socketio
import uvloop
from aiohttp import web

GROUP = "bench"

sio = socketio.AsyncServer(async_mode="aiohttp",
                           client_manager=socketio.AsyncRedisManager(os.environ["BENCH_PUSH_REDIS"]))
app = web.Application()
sio.attach(app)


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    await sio.enter_room(sid, GROUP)


async def plaintext(request: web.Request) -> web.Response:
    return web.Response(text="ok")


app.router.add_get("/plaintext", plaintext)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(app, host=args.host, port=args.port, loop=uvloop.new_event_loop(), print=None, access_log=None)
