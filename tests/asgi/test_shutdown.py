"""Graceful shutdown of an ASGI app, as for native Apps (both loops): requests in flight finish
and their connection closes after them, idle keep-alive connections close, nothing new is
accepted, the lifespan shutdown runs last; past the grace period what is left is cancelled.
(WebSockets getting 1001: tests/asgi/test_websocket.py.)"""
from __future__ import annotations

import asyncio
from typing import Any

import cyserve.asgi
from tests.asgi.asgi_support import respond
from tests.support import RawClient


async def _until(predicate: Any, timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


def slow_app(events: list[str], delay_s: float) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            events.append("lifespan shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        events.append(f"start {scope['path']}")
        try:
            await asyncio.sleep(delay_s if scope["path"] == "/slow" else 0)
        except asyncio.CancelledError:
            events.append(f"cancelled {scope['path']}")
            raise
        await respond(send, body=b"finished " + scope["path"].encode())
        events.append(f"done {scope['path']}")
    return app


def test_in_flight_requests_finish_and_the_lifespan_shuts_down_last(run):
    events: list[str] = []

    async def main() -> None:
        server = await cyserve.asgi.serve(slow_app(events, 0.6), "127.0.0.1", 0)
        busy = await RawClient.open(server.port)
        idle = await RawClient.open(server.port)
        try:
            assert (await idle.request("GET", "/fast")).status == 200   # now idle, kept alive
            await busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await _until(lambda: "start /slow" in events)
            stopping = asyncio.ensure_future(server.shutdown(timeout_s=5))
            assert await idle.is_closed_by_peer()
            reply = await busy.response()
            assert reply.body == b"finished /slow"
            # RFC 9112 §9.6: the last response says the connection ends with it.
            assert reply.headers["connection"] == "close"
            await stopping
            try:
                await RawClient.open(server.port)
                refused = False
            except OSError:
                refused = True
            assert refused
        finally:
            await busy.close()
            await idle.close()
        assert events == ["start /fast", "done /fast", "start /slow", "done /slow",
                          "lifespan shutdown"]
    run(main)


def test_requests_past_the_grace_period_are_cancelled(run):
    events: list[str] = []

    async def main() -> None:
        server = await cyserve.asgi.serve(slow_app(events, 30), "127.0.0.1", 0)
        client = await RawClient.open(server.port)
        try:
            await client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await _until(lambda: "start /slow" in events)
            await server.shutdown(timeout_s=0.3)
            assert await client.is_closed_by_peer()
        finally:
            await client.close()
        assert events == ["start /slow", "cancelled /slow", "lifespan shutdown"]
    run(main)
