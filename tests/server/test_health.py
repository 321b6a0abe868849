"""``cyserve.health.Health`` over real sockets on 127.0.0.1, on uvloop and stdlib asyncio:
liveness and readiness across a server's start, its serving and its drain."""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

import pytest

from cyserve import App
from cyserve.health import Health
from tests.support import RawClient, serving


def make_app(health: Health) -> App:
    app = App()
    app.use(health)

    @app.get("/")
    async def index(request):
        return "app"

    @app.get("/healthz/other")
    async def other(request):
        return "a route under the health path is the app's"

    return app


@contextlib.asynccontextmanager
async def client(port: int) -> AsyncIterator[RawClient]:
    c = await RawClient.open(port)
    try:
        yield c
    finally:
        await c.close()


def test_readiness_is_503_starting_until_bound_then_200_and_liveness_always_200(run):
    async def main():
        health = Health()
        async with serving(make_app(health)) as server, client(server.port) as c:
            # The app serves, but nobody told the probe that the server is up.
            live = await c.request("GET", "/healthz")
            assert (live.status, live.body) == (200, b"ok\n")
            assert live.headers["cache-control"] == "no-store"
            ready = await c.request("GET", "/healthz/ready")
            assert (ready.status, ready.body) == (503, b"starting\n")
            assert ready.headers["retry-after"] == "1"
            health.bind(server)
            ready = await c.request("GET", "/healthz/ready")
            assert (ready.status, ready.body) == (200, b"ready\n")
            assert health.status == "ready"
            # Everything else goes to the app as before.
            assert (await c.request("GET", "/")).body == b"app"
            assert (await c.request("GET", "/healthz/other")).status == 200
            assert (await c.request("GET", "/nowhere")).status == 404
    run(main)


def test_readiness_is_503_draining_once_shutdown_begins_and_liveness_stays_200(run):
    async def main():
        health = Health()
        app = make_app(health)
        started, release = asyncio.Event(), asyncio.Event()

        @app.get("/slow")
        async def slow(request):
            started.set()
            await release.wait()
            return "slow"

        async with serving(app) as server, client(server.port) as busy, \
                client(server.port) as ready_probe, client(server.port) as live_probe:
            health.bind(server)
            assert (await ready_probe.request("GET", "/healthz/ready")).status == 200
            await busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(started.wait(), 5)
            # Two probes already on their way when the drain begins: half a head each (a
            # connection mid-head is not idle, so the drain lets it finish its request).
            await ready_probe.send(b"GET /healthz/ready HTTP/1.1\r\n")
            await live_probe.send(b"GET /healthz HTTP/1.1\r\n")
            await asyncio.sleep(0.1)
            shutdown = asyncio.ensure_future(server.shutdown(timeout_s=10))
            await asyncio.sleep(0)
            assert server.draining and health.status == "draining"
            # The core turns keep-alive off a moment later (serve.py's settle time for
            # connections accepted an instant before): wait for that, bounded.
            for _ in range(500):
                if server.state.shutting_down:
                    break
                await asyncio.sleep(0.01)
            assert server.state.shutting_down
            await ready_probe.send(b"Host: x\r\n\r\n")
            await live_probe.send(b"Host: x\r\n\r\n")
            ready = await ready_probe.response()
            assert (ready.status, ready.body) == (503, b"draining\n")
            assert ready.headers["connection"] == "close"
            live = await live_probe.response()
            assert (live.status, live.body) == (200, b"ok\n")
            release.set()
            assert (await busy.response()).body == b"slow"
            await asyncio.wait_for(shutdown, 5)
    run(main)


def test_health_answers_head_without_a_body_and_refuses_other_methods(run):
    async def main():
        health = Health("/status", retry_after_s=5)
        async with serving(make_app(health)) as server, client(server.port) as c:
            head = await c.request("HEAD", "/status/ready")
            assert (head.status, head.body) == (503, b"")
            assert head.headers["retry-after"] == "5"
            post = await c.request("POST", "/status", body=b"x")
            assert post.status == 405 and post.headers["allow"] == "GET, HEAD"
            assert (await c.request("GET", "/healthz")).status == 404   # the path is /status
            health.bind(server)
            assert (await c.request("HEAD", "/status/ready")).status == 200
    run(main)


@pytest.mark.parametrize("path", ["healthz", "/healthz/", ""])
def test_health_refuses_a_path_it_could_not_match(path: str) -> None:
    with pytest.raises(ValueError):
        Health(path)


def test_health_refuses_a_negative_retry_after() -> None:
    with pytest.raises(ValueError):
        Health(retry_after_s=-1)

