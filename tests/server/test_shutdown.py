"""Graceful shutdown over real sockets on 127.0.0.1, on uvloop and stdlib asyncio: what each kind
of connection sees when ``Server.shutdown`` runs, and that the whole of it keeps to its grace
period (``cyserve/server/serve.py`` gives the order)."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
import struct
from typing import Any, AsyncIterator

import h11
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from cyserve import App, WebSocket, WebSocketDisconnect, WebSocketLimits, serve
from cyserve.lifecycle import drain_notices
from cyserve.response import StreamResponse
from cyserve.sse import ServerSentEvent, SSEResponse
from tests.support import RawClient, serving

# Long enough that "ended within a fraction of a second" can't be the grace period running out.
GRACE_S = 10.0
PROMPT_S = 1.5   # what "at once" may take on a loaded two-core machine


async def shut_down(server: Any, timeout_s: float = GRACE_S) -> float:
    """Run ``server.shutdown(timeout_s)``; the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.wait_for(server.shutdown(timeout_s=timeout_s), timeout_s + 5)
    return loop.time() - start


@contextlib.asynccontextmanager
async def served(app: App) -> AsyncIterator[tuple[Any, contextlib.AsyncExitStack]]:
    """The app served on 127.0.0.1:0, and a stack its clients close on: a test that fails half
    way still closes its clients, then shuts the server down (``shutdown`` twice is fine)."""
    async with serving(app) as server, contextlib.AsyncExitStack() as clients:
        yield server, clients


async def client_of(clients: contextlib.AsyncExitStack, port: int) -> RawClient:
    client = await RawClient.open(port)
    clients.push_async_callback(client.close)
    return client


async def refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except OSError:
        return True
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return False


# ---------------------------------------------------------------- plain requests
def test_shutdown_lets_an_in_flight_slow_request_finish_then_exits_the_lifespan(run):
    async def main():
        events: list[str] = []
        started, release = asyncio.Event(), asyncio.Event()

        async def lifespan(app):
            yield
            events.append("lifespan exit")

        app = App(lifespan=lifespan)

        @app.get("/slow")
        async def slow(request):
            started.set()
            await release.wait()
            events.append("request finished")
            return "finished"

        async with served(app) as (server, clients):
            assert server.ready and not server.draining
            client = await client_of(clients, server.port)
            await client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(started.wait(), 5)
            shutdown = asyncio.ensure_future(shut_down(server))
            await asyncio.sleep(0.1)
            assert server.draining and not server.ready
            assert not shutdown.done()                       # the request is still in flight
            assert await refuses_connections(server.port)    # but nothing new is accepted
            release.set()
            reply = await client.response()
            assert (reply.status, reply.body) == (200, b"finished")
            assert reply.headers["connection"] == "close"    # no keep-alive while draining
            assert await asyncio.wait_for(shutdown, GRACE_S + 5) < GRACE_S
            assert events == ["request finished", "lifespan exit"]
    run(main)


def test_shutdown_closes_idle_keep_alive_connections_at_once(run):
    async def main():
        app = App()

        @app.get("/")
        async def index(request):
            return "hi"

        async with served(app) as (server, clients):
            idle = [await client_of(clients, server.port) for _ in range(3)]
            for client in idle:
                reply = await client.request("GET", "/")
                assert reply.status == 200 and reply.headers.get("connection") != "close"
            took = await shut_down(server)
            assert took < PROMPT_S, f"idle connections held the shutdown for {took:.2f}s"
            for client in idle:
                assert await client.is_closed_by_peer(timeout_s=2)
    run(main)


def test_shutdown_twice_waits_for_the_first_call(run):
    async def main():
        release = asyncio.Event()
        started = asyncio.Event()
        app = App()

        @app.get("/slow")
        async def slow(request):
            started.set()
            await release.wait()
            return "done"

        async with served(app) as (server, clients):
            client = await client_of(clients, server.port)
            await client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(started.wait(), 5)
            first = asyncio.ensure_future(server.shutdown(timeout_s=GRACE_S))
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(server.shutdown(timeout_s=0.01))
            await asyncio.sleep(0.2)
            # The second call's own 0.01 s did not cut the first one's grace period short.
            assert not first.done() and not second.done()
            release.set()
            assert (await client.response()).body == b"done"
            await asyncio.wait_for(asyncio.gather(first, second), 5)
    run(main)


# ---------------------------------------------------------------- streams
async def open_stream(clients: contextlib.AsyncExitStack, port: int, target: str) -> RawClient:
    client = await client_of(clients, port)
    await client.send(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return client


def test_shutdown_ends_an_open_sse_stream_promptly_with_a_clean_end(run):
    async def main():
        app = App()
        first_sent = asyncio.Event()
        producer_closed = asyncio.Event()

        @app.get("/events")
        async def events(request):
            async def produce():
                try:
                    yield ServerSentEvent("hello", id="1")
                    first_sent.set()
                    await asyncio.sleep(3600)   # a quiet stream: nothing more to say for now
                    yield "never"
                finally:
                    producer_closed.set()
            return SSEResponse(produce(), drain_event=ServerSentEvent(retry=1500))

        async with served(app) as (server, clients):
            client = await open_stream(clients, server.port, "/events")
            await asyncio.wait_for(first_sent.wait(), 5)
            shutdown = asyncio.ensure_future(shut_down(server))
            # The whole response, read through h11: it returns only at the terminating chunk
            # (RFC 9112 §7.1), so this is the client seeing a clean end, not a cut connection.
            reply = await client.response(timeout_s=PROMPT_S)
            assert reply.headers["content-type"] == "text/event-stream"
            assert reply.headers["transfer-encoding"] == "chunked"
            assert reply.body == b"id: 1\ndata: hello\n\nretry: 1500\n\n"
            assert producer_closed.is_set()
            assert await asyncio.wait_for(shutdown, 5) < PROMPT_S
            assert await client.is_closed_by_peer(timeout_s=2)
            assert len(drain_notices) == 0            # nothing kept of the drained connections
    run(main)


def test_an_sse_response_that_starts_while_the_server_drains_ends_at_once(run):
    async def main():
        app = App()
        started, proceed = asyncio.Event(), asyncio.Event()

        @app.get("/events")
        async def events(request):
            started.set()
            await proceed.wait()            # the drain begins while the handler is here

            async def produce():
                yield "first"
                await asyncio.sleep(3600)
                yield "never"
            return SSEResponse(produce())

        async with served(app) as (server, clients):
            client = await open_stream(clients, server.port, "/events")
            await asyncio.wait_for(started.wait(), 5)
            shutdown = asyncio.ensure_future(shut_down(server))
            await asyncio.sleep(0.05)
            proceed.set()
            reply = await client.response(timeout_s=PROMPT_S)
            assert reply.status == 200
            assert reply.body in (b"", b"data: first\n\n")  # the producer may get one step in
            assert await asyncio.wait_for(shutdown, 5) < PROMPT_S
    run(main)


def test_a_producer_watching_lifecycle_draining_ends_its_stream_itself(run):
    async def main():
        app = App()
        streaming = asyncio.Event()

        @app.get("/ticks")
        async def ticks(request):
            async def produce():
                draining = app.lifecycle.draining
                n = 0
                while not draining.is_set():
                    yield f"tick {n}\n"
                    n += 1
                    streaming.set()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(draining.wait(), 0.02)
                yield "bye\n"
            return StreamResponse(produce(), content_type="text/plain")

        async with served(app) as (server, clients):
            client = await open_stream(clients, server.port, "/ticks")
            await asyncio.wait_for(streaming.wait(), 5)
            shutdown = asyncio.ensure_future(shut_down(server))
            reply = await client.response(timeout_s=PROMPT_S)
            assert reply.body.startswith(b"tick 0\n") and reply.body.endswith(b"bye\n")
            assert await asyncio.wait_for(shutdown, 5) < PROMPT_S
    run(main)


def test_a_stream_that_never_ends_is_cancelled_at_the_grace_timeout(run, caplog):
    async def main():
        app = App()
        streaming = asyncio.Event()
        outcome: list[str] = []

        @app.get("/forever")
        async def forever(request):
            async def produce():
                try:
                    while True:
                        yield b"x" * 100
                        streaming.set()
                        await asyncio.sleep(0.02)
                except asyncio.CancelledError:
                    outcome.append("cancelled")
                    raise
                except GeneratorExit:
                    outcome.append("closed")
                    raise
            return StreamResponse(produce())

        async with served(app) as (server, clients):
            client = await open_stream(clients, server.port, "/forever")
            await asyncio.wait_for(streaming.wait(), 5)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="cyserve.error"):
                took = await shut_down(server, timeout_s=0.5)
            assert 0.45 <= took < 0.5 + PROMPT_S
            assert outcome and outcome[0] in ("cancelled", "closed")
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                        and r.name == "cyserve.error"]
            assert len(warnings) == 1 and "1 connection(s) still busy" in warnings[0], warnings
            # The body was cut, never finished: no terminating chunk, so the client knows.
            with pytest.raises((h11.RemoteProtocolError, ConnectionError)):
                await client.response(timeout_s=3)
    run(main)


def test_background_tasks_get_only_what_is_left_of_the_grace_period(run):
    async def main():
        app = App()
        cancelled = asyncio.Event()

        async def long_job():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        @app.get("/")
        async def index(request):
            request.background(long_job)
            return "queued"

        async with served(app) as (server, clients):
            client = await client_of(clients, server.port)
            assert (await client.request("GET", "/")).body == b"queued"
            took = await shut_down(server, timeout_s=0.5)
            assert took < 0.5 + PROMPT_S and cancelled.is_set()
    run(main)


# ---------------------------------------------------------------- WebSockets
def ws_app(close_timeout_s: float) -> tuple[App, list[Any], asyncio.Event]:
    app = App(websocket=WebSocketLimits(close_timeout_s=close_timeout_s, ping_interval_s=None))
    seen: list[Any] = []
    accepted = asyncio.Event()

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        accepted.set()
        try:
            async for message in ws:
                await ws.send(message)
            seen.append(ws.close_code)
        except WebSocketDisconnect as exc:
            seen.append(exc.code)
            raise

    return app, seen, accepted


def test_shutdown_closes_an_open_websocket_with_1001_and_its_handshake(run):
    async def main():
        app, seen, _ = ws_app(close_timeout_s=GRACE_S)
        async with serving(app) as server, websockets.connect(
                f"ws://127.0.0.1:{server.port}/ws", open_timeout=5, close_timeout=2) as client:
            await client.send("hi")
            assert await asyncio.wait_for(client.recv(), 5) == "hi"
            shutdown = asyncio.ensure_future(shut_down(server))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(client.recv(), 5)
            assert client.close_code == 1001            # RFC 6455 §7.4.1: going away
            # The client answered the Close: the handshake ended it, not close_timeout_s.
            assert await asyncio.wait_for(shutdown, 5) < PROMPT_S
        assert seen == [1001]
    run(main)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def raw_websocket(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand: it will read the server's Close and never answer it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


def test_a_websocket_peer_that_never_answers_the_close_is_dropped_after_close_timeout(run):
    async def main():
        app, seen, accepted = ws_app(close_timeout_s=0.4)
        async with served(app) as (server, clients):
            reader, writer = await raw_websocket(server.port)
            clients.push_async_callback(close_writer, writer)
            await asyncio.wait_for(accepted.wait(), 5)
            shutdown = asyncio.ensure_future(shut_down(server))
            b0, b1 = await asyncio.wait_for(reader.readexactly(2), 5)
            assert b0 == 0x88 and not b1 & 0x80                # FIN + Close, unmasked (§5.1)
            payload = await asyncio.wait_for(reader.readexactly(b1 & 0x7F), 5)
            assert struct.unpack("!H", payload[:2])[0] == 1001
            # No Close comes back: the server gives up after close_timeout_s, long before the
            # grace period.
            assert await asyncio.wait_for(reader.read(), 5) == b""
            took = await asyncio.wait_for(shutdown, 5)
            assert 0.35 <= took < 0.4 + PROMPT_S
            assert seen and seen[0] in (1001, 1006)
    run(main)


# ---------------------------------------------------------------- listeners
def test_a_unix_socket_listener_serves_and_drains(run, tmp_path):
    async def main():
        app = App()

        @app.get("/")
        async def index(request):
            return "over a unix socket"

        path = str(tmp_path / "cyserve.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)      # bound by someone else (a supervisor, systemd), handed to serve()
        async with serving_sock(app, sock) as server:
            assert server.addresses == [path] and server.port == 0
            reader, writer = await asyncio.open_unix_connection(path)
            client = RawClient(reader, writer)
            try:
                reply = await client.request("GET", "/")
                assert (reply.status, reply.body) == (200, b"over a unix socket")
                assert await shut_down(server) < PROMPT_S
                assert await client.is_closed_by_peer(timeout_s=2)   # the idle keep-alive
            finally:
                await client.close()
    run(main)


@contextlib.asynccontextmanager
async def serving_sock(app: App, sock: socket.socket) -> AsyncIterator[Any]:
    server = await serve(app, sock=sock)
    try:
        yield server
    finally:
        await server.shutdown(timeout_s=2)


def test_abort_cuts_the_grace_period_short_and_the_lifespan_still_exits(run, caplog):
    async def main():
        events: list[str] = []

        async def lifespan(app):
            yield
            events.append("lifespan exit")

        app = App(lifespan=lifespan)
        started = asyncio.Event()

        @app.get("/stuck")
        async def stuck(request):
            started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                events.append("handler cancelled")
                raise

        async with served(app) as (server, clients):
            client = await client_of(clients, server.port)
            await client.send(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(started.wait(), 5)
            shutdown = asyncio.ensure_future(shut_down(server))   # a grace of GRACE_S
            await asyncio.sleep(0.1)
            assert not shutdown.done()
            with caplog.at_level(logging.WARNING, logger="cyserve.error"):
                server.abort()                                    # the second Ctrl-C
            assert await asyncio.wait_for(shutdown, 5) < PROMPT_S
            assert events == ["handler cancelled", "lifespan exit"]
            assert any("dropping 1 connection(s)" in r.getMessage() for r in caplog.records)
            with pytest.raises((h11.RemoteProtocolError, ConnectionError)):
                await client.response(timeout_s=3)
    run(main)


def test_a_request_on_a_connection_accepted_just_before_the_shutdown_is_answered(run):
    async def main():
        app = App()

        @app.get("/")
        async def index(request):
            return "answered"

        async with served(app) as (server, clients):
            client = await client_of(clients, server.port)
            for _ in range(200):                        # until the server has accepted it
                if server.state.connections:
                    break
                await asyncio.sleep(0.01)
            assert server.state.connections
            # The request is in the server's socket buffer, not yet read, when the shutdown
            # begins: the connection looks idle.
            client.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            # Scheduled now, so its first step runs in the loop turn that reads the request.
            shutdown = asyncio.ensure_future(server.shutdown(timeout_s=GRACE_S))
            reply = await client.response(timeout_s=5)
            assert (reply.status, reply.body) == (200, b"answered")
            await asyncio.wait_for(shutdown, 5)
            assert await client.is_closed_by_peer(timeout_s=2)
    run(main)
