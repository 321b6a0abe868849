"""Every asyncio facility works from a handler's first line, over real sockets on both loops.

cyserve runs a handler's first step inline (cyserve/_core/http/eager.pyx), inside the handler's
own Task: ``asyncio.timeout``, ``asyncio.wait_for`` (built on it from 3.12), anyio cancel scopes
(what Starlette, FastAPI and httpx use) and ``asyncio.current_task()`` behave as in any Task, the
same Task before and after the first suspension; the server's own cancellations (``handler_s``,
shutdown) and disconnect reporting reach that Task as before.  A WebSocket handler runs in a Task
of its own (cyserve/websocket.py): the same facilities work there.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import socket
import struct
from typing import Any

import anyio
from websockets.asyncio.client import connect

from cyserve import App, Disconnected, Request, Timeouts, WebSocket
from cyserve.middleware import Handler
from tests.support import RawClient, fetch, serving

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def make_app(**options: Any) -> App:
    app = App(**options)

    @app.get("/timeout/{seconds:float}/{sleep_s:float}")
    async def timeout(request):
        try:
            async with asyncio.timeout(request.path_params["seconds"]):
                await asyncio.sleep(request.path_params["sleep_s"])
        except TimeoutError:
            return "timed out"
        return "in time"

    @app.get("/timeout-unused")
    async def timeout_unused(request):
        async with asyncio.timeout(5):
            pass           # the block never suspends: the handler ends in its first step
        return "no wait"

    @app.get("/wait-for/{seconds:float}/{sleep_s:float}")
    async def wait_for(request):
        try:
            return await asyncio.wait_for(asyncio.sleep(request.path_params["sleep_s"], "slept"),
                                          request.path_params["seconds"])
        except TimeoutError:
            return "timed out"

    @app.get("/identity")
    async def identity(request):
        first = asyncio.current_task()
        await asyncio.sleep(0)
        second = asyncio.current_task()
        await asyncio.sleep(0.01)
        return {"task": first is not None, "same": first is second is asyncio.current_task(),
                "name": first.get_name() if first is not None else None}

    @app.get("/anyio/{seconds:float}/{sleep_s:float}")
    async def anyio_deadline(request):
        with anyio.move_on_after(request.path_params["seconds"]) as scope:
            await anyio.sleep(request.path_params["sleep_s"])
        try:
            with anyio.fail_after(request.path_params["seconds"]):
                await anyio.sleep(request.path_params["sleep_s"])
        except TimeoutError:
            return {"moved_on": scope.cancelled_caught, "failed": True}
        return {"moved_on": scope.cancelled_caught, "failed": False}

    @app.get("/anyio-group")
    async def anyio_group(request):
        results: list[str] = []

        async def child(name: str, delay_s: float) -> None:
            await anyio.sleep(delay_s)
            results.append(name)

        async with anyio.create_task_group() as group:
            group.start_soon(child, "slow", 0.02)
            group.start_soon(child, "fast", 0.0)
        return results

    @app.get("/who/{name}")
    async def who(request):
        before = WHO.get()
        WHO.set(request.path_params["name"])
        await asyncio.sleep(0.02)
        return {"before": before, "after": WHO.get()}

    return app


def reset_connection(client: RawClient) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), as a crashed client does: the server
    reports that as ``Disconnected`` (a FIN mid-body is a short body, answered 400)."""
    sock = client.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.writer.transport.abort()


def test_asyncio_timeout_at_the_top_of_a_handler_fires_and_lets_through(run):
    async def main():
        async with serving(make_app()) as server:
            fired = await fetch(server.port, "GET", "/timeout/0.05/5")
            through = await fetch(server.port, "GET", "/timeout/5/0.01")
            unused = await fetch(server.port, "GET", "/timeout-unused")
        assert (fired.status, fired.body) == (200, b"timed out")
        assert (through.status, through.body) == (200, b"in time")
        assert (unused.status, unused.body) == (200, b"no wait")
    run(main)


def test_asyncio_wait_for_in_a_handler_fires_and_lets_through(run):
    async def main():
        async with serving(make_app()) as server:
            fired = await fetch(server.port, "GET", "/wait-for/0.05/5")
            through = await fetch(server.port, "GET", "/wait-for/5/0.01")
        assert (fired.status, fired.body) == (200, b"timed out")
        assert (through.status, through.body) == (200, b"slept")
    run(main)


def test_the_current_task_is_the_same_before_and_after_the_first_suspension(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            replies = [await client.request("GET", "/identity") for _ in range(3)]
            await client.close()
        facts = [json.loads(reply.body) for reply in replies]
        assert all(fact["task"] and fact["same"] for fact in facts), facts
        assert len({fact["name"] for fact in facts}) == 3   # a Task of its own per request
    run(main)


def test_anyio_deadlines_in_a_handler(run):
    async def main():
        async with serving(make_app()) as server:
            fired = await fetch(server.port, "GET", "/anyio/0.05/5")
            through = await fetch(server.port, "GET", "/anyio/5/0.01")
            group = await fetch(server.port, "GET", "/anyio-group")
        assert json.loads(fired.body) == {"moved_on": True, "failed": True}
        assert json.loads(through.body) == {"moved_on": False, "failed": False}
        assert json.loads(group.body) == ["fast", "slow"]
    run(main)


def test_contextvars_stay_per_request_across_concurrent_requests(run):
    async def main():
        async with serving(make_app()) as server:
            replies = await asyncio.gather(*(fetch(server.port, "GET", f"/who/{name}")
                                             for name in ("ann", "bob", "cy")))
        assert [json.loads(reply.body) for reply in replies] == [
            {"before": "nobody", "after": name} for name in ("ann", "bob", "cy")]
    run(main)


def test_middleware_around_the_handler_can_use_a_timeout(run):
    def bounded(handler: Handler) -> Handler:
        async def call(request: Request) -> Any:
            try:
                async with asyncio.timeout(0.05):
                    return await handler(request)
            except TimeoutError:
                return "the middleware's timeout"
        return call

    async def main():
        app = make_app()
        app.use(bounded)
        async with serving(app) as server:
            slow = await fetch(server.port, "GET", "/timeout/5/5")
            quick = await fetch(server.port, "GET", "/timeout/5/0")
        assert slow.body == b"the middleware's timeout" and quick.body == b"in time"
    run(main)


def test_handler_s_cancels_the_handlers_task_through_its_own_timeout(run):
    app = App(timeouts=Timeouts(handler_s=0.2))
    seen: list[Any] = []

    @app.get("/stuck")
    async def stuck(request):
        first = asyncio.current_task()
        try:
            async with asyncio.timeout(30):
                await asyncio.sleep(30)
        except asyncio.CancelledError:
            # The server's cancel: the handler's own timeout lets it through untouched.
            seen.append(asyncio.current_task() is first)
            raise
        return "too late"

    async def main():
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/stuck")
            await client.close()
        assert reply.status == 503
        assert seen == [True]
    run(main)


def test_shutdown_cancels_a_stuck_handler_that_entered_a_timeout_first(run):
    async def main():
        app = App()
        started = asyncio.Event()
        cancelled = asyncio.Event()

        @app.get("/stuck")
        async def stuck(request):
            async with asyncio.timeout(30):
                started.set()
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    cancelled.set()
                    raise

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(started.wait(), 3)
            await server.shutdown(timeout_s=0.2)
            assert cancelled.is_set()
            await client.close()
    run(main)


def test_a_disconnect_still_reaches_a_handler_reading_under_a_timeout(run):
    async def main():
        app = App()
        seen: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        @app.post("/upload")
        async def upload(request):
            try:
                async with asyncio.timeout(10):
                    await request.body()
            except Disconnected as exc:
                seen.set_result(exc)
                raise
            return "read"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart")
            await asyncio.sleep(0.05)
            reset_connection(client)
            assert isinstance(await asyncio.wait_for(seen, 3), Disconnected)
    run(main)


def test_a_websocket_handler_has_its_task_and_timeouts(run):
    async def main():
        app = App()

        @app.websocket("/ws")
        async def echo(ws: WebSocket):
            first = asyncio.current_task()
            await ws.accept()
            try:
                async with asyncio.timeout(0.05):
                    await ws.receive()
            except TimeoutError:
                await ws.send("timed out")
            with anyio.move_on_after(5):
                message = await ws.receive()
            await ws.send(f"{message} same={asyncio.current_task() is first is not None}")

        async with serving(app) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as peer:
                assert await asyncio.wait_for(peer.recv(), 3) == "timed out"
                await peer.send("hello")
                assert await asyncio.wait_for(peer.recv(), 3) == "hello same=True"
    run(main)
