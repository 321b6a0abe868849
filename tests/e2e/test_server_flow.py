"""Real sockets: backpressure both ways, disconnects, graceful shutdown."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from cyserve import App, Disconnected, StreamResponse, WaterMarks
from tests.support import RawClient, serving

CHUNK = 64 * 1024


def reset_connection(client: RawClient) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), as a crashed client would."""
    sock = client.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.writer.transport.abort()


def test_slow_reader_keeps_the_producer_bounded(run):
    produced = []

    async def main():
        stopped = asyncio.Event()
        app = App(water_marks=WaterMarks(write_high=64 * 1024, write_low=16 * 1024))

        @app.get("/big")
        async def big(request):
            async def gen():
                try:
                    for _ in range(10_000):  # 640 MB if nothing pushed back
                        produced.append(CHUNK)
                        yield b"x" * CHUNK
                finally:
                    stopped.set()
            return StreamResponse(gen())

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            await client.reader.readexactly(1024)  # then stop reading
            await asyncio.sleep(0.5)
            first = sum(produced)
            await asyncio.sleep(0.5)
            # Kernel socket buffers plus the write high water mark: a few MB, not hundreds.
            assert sum(produced) == first, "the producer kept going while the client did not read"
            assert first < 16 * 1024 * 1024
            await client.close()
            await asyncio.wait_for(stopped.wait(), 3)  # the gone client stopped the stream
    run(main)


def test_pipelined_burst_pauses_reading_and_resumes(run):
    async def main():
        gate = asyncio.Event()
        app = App()

        @app.get("/gate")
        async def wait_gate(request):
            await gate.wait()
            return "opened"

        @app.get("/n/{i:int}")
        async def number(request):
            return str(request.path_params["i"])

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            padding = "p" * 900
            count = 10_000  # ~10 MB of pipelined requests behind a blocked one: past kernel buffers
            burst = b"GET /gate HTTP/1.1\r\nHost: x\r\n\r\n" + b"".join(
                f"GET /n/{i} HTTP/1.1\r\nHost: x\r\nX-Pad: {padding}\r\n\r\n".encode() for i in range(count))
            client.writer.write(burst)
            await asyncio.sleep(0.5)
            (conn,) = server.state.connections
            assert conn.reading_paused, "reading should pause while the pipeline window is full"
            assert client.writer.transport.get_write_buffer_size() > 0  # the client is held back
            gate.set()
            assert (await client.response()).body == b"opened"
            for i in range(count):
                assert (await client.response()).body == str(i).encode()
            assert not conn.reading_paused
            await client.close()
    run(main, timeout_s=60)


def test_unread_streamed_body_pauses_reading(run):
    async def main():
        gate = asyncio.Event()
        app = App(water_marks=WaterMarks(body_high=64 * 1024, body_low=16 * 1024))

        @app.post("/late")
        async def late(request):
            await gate.wait()
            total = 0
            async for chunk in request.stream():
                total += len(chunk)
            return {"total": total}

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            size = 8 * 1024 * 1024
            client.writer.write(b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
            client.writer.write(b"y" * size)
            await asyncio.sleep(0.5)
            (conn,) = server.state.connections
            assert conn.reading_paused
            assert client.writer.transport.get_write_buffer_size() > 0
            gate.set()
            reply = await client.response("POST", timeout_s=10)
            assert reply.body == b'{"total":%d}' % size
            await client.close()
    run(main)


def test_disconnect_mid_body_reaches_the_handler(run):
    async def main():
        seen = asyncio.get_running_loop().create_future()
        app = App()

        @app.post("/upload")
        async def upload(request):
            try:
                await request.body()
            except Disconnected as exc:
                seen.set_result(exc)
                raise
            return "unexpected"

        @app.get("/ok")
        async def ok(request):
            return "ok"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
            await asyncio.sleep(0.1)
            reset_connection(client)
            assert isinstance(await asyncio.wait_for(seen, 3), Disconnected)
            other = await RawClient.open(server.port)
            assert (await other.request("GET", "/ok")).body == b"ok"
            await other.close()
    run(main)


def test_half_close_mid_body_answers_400(run):
    async def main():
        app = App()

        @app.post("/upload")
        async def upload(request):
            return {"size": len(await request.body())}

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
            client.writer.write_eof()  # the client is done sending, 993 bytes short
            reply = await client.response("POST")
            assert reply.status == 400 and reply.headers["connection"] == "close"
            await client.close()
    run(main)


def test_disconnect_is_observable_by_the_handler(run):
    async def main():
        noticed = asyncio.Event()
        app = App()

        @app.get("/wait")
        async def wait(request):
            await request.wait_disconnected()
            assert request.is_disconnected()
            noticed.set()
            return "too late"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(0.1)
            await client.close()
            await asyncio.wait_for(noticed.wait(), 3)
    run(main)


def test_graceful_shutdown_finishes_in_flight_requests(run):
    async def main():
        app = App()
        started = asyncio.Event()

        @app.get("/slow")
        async def slow(request):
            started.set()
            await asyncio.sleep(0.3)
            return "finished"

        @app.get("/ok")
        async def ok(request):
            return "ok"

        async with serving(app) as server:
            busy = await RawClient.open(server.port)
            idle = await RawClient.open(server.port)
            assert (await idle.request("GET", "/ok")).status == 200
            await busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await started.wait()
            shutdown = asyncio.create_task(server.shutdown(timeout_s=5))
            assert await idle.is_closed_by_peer(timeout_s=1)  # idle keep-alive closed at once
            reply = await busy.response()
            assert reply.body == b"finished" and reply.headers["connection"] == "close"
            await shutdown
            with contextlib.suppress(ConnectionError, OSError):
                refused = await RawClient.open(server.port)
                await refused.close()
                raise AssertionError("the listener still accepts after shutdown")
            await busy.close()
            await idle.close()
    run(main)


def test_shutdown_grace_period_cancels_stuck_handlers(run):
    async def main():
        app = App()
        cancelled = asyncio.Event()

        @app.get("/stuck")
        async def stuck(request):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(0.1)
            await server.shutdown(timeout_s=0.3)
            assert cancelled.is_set()
            await client.close()
    run(main)
