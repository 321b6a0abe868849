"""Real sockets: the core's operational limits and header switches, on both loops.

``limit_concurrency`` (uvicorn's ``--limit-concurrency``): 503 with ``Connection: close`` from
the core while more connections are open, or as many handlers run, and everyone else is still
served; ``limit_connections_per_ip``: a connection past its host's share is answered 503 and
closed right after accept; ``date_header=False`` and ``server_header=None`` drop those fields.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from cyserve import App
from tests.support import RawClient, serving


def make_app(**config: Any) -> tuple[App, list[asyncio.Event]]:
    app = App()
    app.config = dataclasses.replace(app.config, **config)
    gates: list[asyncio.Event] = []

    @app.get("/ok")
    async def ok(request: Any) -> str:
        return "ok"

    @app.get("/slow")
    async def slow(request: Any) -> str:
        gate = asyncio.Event()
        gates.append(gate)
        await asyncio.wait_for(gate.wait(), 5.0)
        return "slow"

    return app, gates


async def wait_for(predicate: Any, timeout_s: float = 3.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout_s)


def test_limit_concurrency_answers_503_and_keeps_serving_the_others(run: Any) -> None:
    async def main() -> None:
        app, gates = make_app(limit_concurrency=2)
        async with serving(app) as server:
            slow = [await RawClient.open(server.port) for _ in range(2)]
            pending = [asyncio.ensure_future(c.request("GET", "/slow")) for c in slow]
            await wait_for(lambda: len(gates) == 2)
            # Two handlers run: a third request is refused at once, and its connection closed.
            extra = await RawClient.open(server.port)
            reply = await extra.request("GET", "/ok")
            assert reply.status == 503
            assert reply.headers["connection"] == "close"
            assert await extra.is_closed_by_peer()
            await extra.close()
            for gate in gates:
                gate.set()
            assert [(await p).body for p in pending] == [b"slow", b"slow"]
            # Both connections kept alive: two are open, so a third is one too many...
            third = await RawClient.open(server.port)
            assert (await third.request("GET", "/ok")).status == 503
            await third.close()
            # ...and with one of them gone, a new connection is served, the old one too.
            await slow[1].close()
            await wait_for(lambda: len(server.state.connections) == 1)
            fresh = await RawClient.open(server.port)
            assert (await fresh.request("GET", "/ok")).body == b"ok"
            assert (await slow[0].request("GET", "/ok")).body == b"ok"
            await fresh.close()
            await slow[0].close()

    run(main)


def test_limit_concurrency_of_one_serves_one_connection_at_a_time(run: Any) -> None:
    # uvicorn counts the requesting connection itself, so there a limit of 1 refuses every
    # request; here one connection is served, request after request.
    async def main() -> None:
        app, _ = make_app(limit_concurrency=1)
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            for _ in range(3):
                assert (await client.request("GET", "/ok")).status == 200
            await client.close()

    run(main)


def test_connections_past_the_per_address_cap_get_503_and_close(run: Any) -> None:
    async def main() -> None:
        app, _ = make_app(limit_connections_per_ip=2)
        async with serving(app) as server:
            held = [await RawClient.open(server.port) for _ in range(2)]
            for client in held:
                assert (await client.request("GET", "/ok")).status == 200
            refused = await RawClient.open(server.port)
            # The answer comes unasked, right after accept.
            reply = await refused.response("GET")
            assert reply.status == 503 and reply.headers["connection"] == "close"
            assert await refused.is_closed_by_peer()
            await refused.close()
            # The connections already open go on being served.
            assert (await held[0].request("GET", "/ok")).status == 200
            await held[0].close()
            await wait_for(lambda: server.state.connections_from("127.0.0.1") == 1)
            again = await RawClient.open(server.port)
            assert (await again.request("GET", "/ok")).status == 200
            assert server.state.connections_from("127.0.0.1") == 2
            await again.close()
            await held[1].close()
            await wait_for(lambda: server.state.connections_from("127.0.0.1") == 0)

    run(main)


def test_date_and_server_headers_can_be_switched_off(run: Any) -> None:
    async def main() -> None:
        default, _ = make_app()
        bare, _ = make_app(date_header=False, server_header=None)
        async with serving(default) as server:
            client = await RawClient.open(server.port)
            headers = (await client.request("GET", "/ok")).headers
            assert "date" in headers and headers["server"] == "cyserve"
            await client.close()
        async with serving(bare) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/ok")
            assert reply.body == b"ok"
            assert "date" not in reply.headers and "server" not in reply.headers
            # The core's own answers (here a 404 from the app, a 400 from the parser) too.
            assert "date" not in (await client.request("GET", "/missing")).headers
            await client.send(b"BAD\r\n\r\n")
            refused = await client.response("GET")
            assert refused.status == 400 and "date" not in refused.headers
            await client.close()

    run(main)


def test_requests_total_counts_what_the_server_parsed(run: Any) -> None:
    async def main() -> None:
        app, _ = make_app()
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            for _ in range(3):
                await client.request("GET", "/ok")
            await client.close()
            assert server.state.requests_total == 3

    run(main)


def test_observer_times_responses_finer_than_the_loop_clock(run: Any) -> None:
    """The observer's duration comes from the monotonic clock, not ``loop.time()``: uvloop's is
    libuv's millisecond clock, which would report every fast response as 0 or 1 ms."""
    durations: list[float] = []

    class Observer:
        def response_done(self, conn: Any, head: Any, status: int, sent: int, duration_s: float) -> None:
            durations.append(duration_s)

    async def main() -> None:
        app, _ = make_app()
        async with serving(app) as server:
            server.state.observer = Observer()
            client = await RawClient.open(server.port)
            for _ in range(20):
                await client.request("GET", "/ok")
            await client.close()

    run(main)
    assert len(durations) == 20 and all(0.0 < d < 5.0 for d in durations), durations
    # Whole milliseconds would mean the loop's clock; a nanosecond clock is never that regular.
    assert any(abs(d * 1000 - round(d * 1000)) > 1e-6 for d in durations), durations
