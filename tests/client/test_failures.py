"""Bad responses, timeouts and broken connections: each raises its own ClientError subclass and
the connection is discarded, never reused.  The servers here are scripted byte for byte."""
from __future__ import annotations

import asyncio
import socket

import pytest

from cyserve.client import (
    Client, ClientLimits, ClientTimeouts, ConnectError, ConnectTimeout, PoolTimeout, ReadTimeout,
    RemoteProtocolError, TotalTimeout, WriteTimeout,
)
from cyserve.errors import ClientError
from tests.client.peers import Peer, raw_server, response, until

OK = response(200, b"ok")


async def serve_forever(peer: Peer, answer: bytes = OK) -> None:
    while await peer.request() is not None:
        await peer.send(answer)


@pytest.mark.parametrize("bad", [
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
], ids=["status-four-digits", "http2-version", "not-http", "bare-lf", "duplicate-length",
        "length-and-chunked", "space-in-field-name", "bad-chunk-size", "bad-chunk-terminator",
        "unexpected-101"])
def test_malformed_response_raises_and_the_connection_is_not_reused(run, bad):
    sent = []

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(OK if sent else bad)
            sent.append(1)

    async def main():
        async with raw_server(handler) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                with pytest.raises(RemoteProtocolError):
                    await client.get("/")
                resp = await client.get("/")
                assert resp.content == b"ok" and server.connections == 2
    run(main)


def test_over_limit_head_raises(run):
    big = response(200, b"x", [("X-Big", "y" * 5000)])

    async def main():
        async with raw_server(lambda p: serve_forever(p, big)) as server:
            limits = ClientLimits(max_head_bytes=2048)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", limits=limits) as client:
                with pytest.raises(RemoteProtocolError, match="head"):
                    await client.get("/")
                assert client.pool.total == 0
    run(main)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-ten..",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    b"",
], ids=["short-length-body", "unfinished-chunked", "no-response"])
def test_connection_closed_mid_response_raises(run, answer):
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer)
        peer.writer.close()

    async def main():
        async with raw_server(handler) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                with pytest.raises(RemoteProtocolError, match="closed"):
                    await client.post("/", content=b"x")   # POST: never retried
    run(main)


def test_interim_1xx_responses_are_skipped(run):
    answer = (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
              b"HTTP/1.1 100 Continue\r\n\r\n" + OK)

    async def main():
        async with raw_server(lambda p: serve_forever(p, answer)) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                for _ in range(2):
                    resp = await client.get("/")
                    assert resp.status == 200 and resp.content == b"ok"
                assert server.connections == 1
    run(main)


def test_a_server_dripping_interim_responses_is_cut_off(run):
    """A server that answers ``100 Continue`` without end never holds a request: past
    ``ClientLimits.max_interim_responses`` the exchange fails (RFC 9110 §15.2), well before the
    total timeout, and the connection is not reused."""
    async def drip(peer: Peer) -> None:
        if await peer.request() is None:
            return
        for _ in range(1000):
            await peer.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            await asyncio.sleep(0.001)

    async def main():
        async with raw_server(drip) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}",
                              limits=ClientLimits(max_interim_responses=4)) as client:
                with pytest.raises(RemoteProtocolError, match="interim"):
                    await asyncio.wait_for(client.get("/"), 5)
                assert client.pool.total == 0
    run(main)


def test_close_delimited_http10_body_reads_to_eof(run):
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"z" * 300000)
        peer.writer.close()

    async def main():
        async with raw_server(handler) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                resp = await client.get("/")
                assert resp.content == b"z" * 300000 and resp.http_version == "HTTP/1.0"
                await until(lambda: client.pool.total == 0)
    run(main)


def test_bytes_after_the_response_make_the_connection_unusable(run):
    async def main():
        async with raw_server(lambda p: serve_forever(p, OK + b"garbage")) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                for _ in range(3):
                    assert (await client.get("/")).content == b"ok"
                assert server.connections == 3
    run(main)


def test_stale_pooled_connection_is_retried_once_for_idempotent_requests(run):
    async def handler(peer: Peer) -> None:
        # Answer one request with keep-alive, then read the next one and hang up without a
        # byte: what a server that closed an idle connection looks like from the client.
        await peer.request()
        await peer.send(OK)
        await peer.request()
        peer.writer.close()

    async def main():
        async with raw_server(handler) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                assert (await client.get("/")).status == 200
                assert (await client.get("/")).status == 200   # retried on a new connection
                assert server.connections == 2
                assert (await client.put("/", content=b"replayable")).status == 200
                assert server.connections == 3
                with pytest.raises(RemoteProtocolError, match="without sending a response"):
                    await client.post("/", content=b"not idempotent")
                assert server.connections == 3
    run(main)


def test_early_response_while_uploading_is_returned(run):
    async def handler(peer: Peer) -> None:
        await peer.reader.readuntil(b"\r\n\r\n")
        await peer.send(response(413, b"too big", [("Connection", "close")], "Content Too Large"))
        peer.writer.close()

    async def body():
        for _ in range(2000):
            yield b"u" * 65536
            await asyncio.sleep(0)

    async def main():
        async with raw_server(handler) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                resp = await client.post("/", content=body())
                assert resp.status == 413 and resp.content == b"too big"
    run(main)


def test_read_timeout(run):
    async def handler(peer: Peer) -> None:
        await peer.request()
        await asyncio.sleep(10)

    async def main():
        async with raw_server(handler) as server:
            timeouts = ClientTimeouts(read_s=0.2)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeouts) as client:
                with pytest.raises(ReadTimeout):
                    await client.get("/")
                assert client.pool.total == 0
    run(main)


def test_read_timeout_between_body_chunks(run):
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await asyncio.sleep(10)

    async def main():
        async with raw_server(handler) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}", timeout=0.2) as client:
                async with client.stream("GET", "/") as resp:
                    with pytest.raises(ReadTimeout):
                        await resp.read()
    run(main)


def test_total_timeout_bounds_a_trickling_response(run):
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):
            await peer.send(b"x")
            await asyncio.sleep(0.05)

    async def main():
        async with raw_server(handler) as server:
            timeouts = ClientTimeouts(read_s=1.0, total_s=0.4)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeouts) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                with pytest.raises(TotalTimeout):
                    await client.get("/")
                assert loop.time() - start < 1.0
    run(main)


def test_write_timeout_when_the_server_stops_reading(run):
    async def handler(peer: Peer) -> None:
        await peer.reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(10)   # never reads the body

    async def body():
        for _ in range(4096):
            yield b"w" * 65536

    async def main():
        async with raw_server(handler) as server:
            timeouts = ClientTimeouts(write_s=0.3)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeouts) as client:
                with pytest.raises(WriteTimeout):
                    await client.post("/", content=body())
    run(main, timeout_s=30)


def test_pool_timeout_when_every_connection_is_busy(run):
    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no")
            await asyncio.sleep(0.5)
            await peer.send(b"k")

    async def main():
        async with raw_server(handler) as server:
            limits = ClientLimits(max_connections=1)
            timeouts = ClientTimeouts(pool_s=0.1)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", limits=limits,
                              timeout=timeouts) as client:
                async with client.stream("GET", "/") as held:
                    with pytest.raises(PoolTimeout):
                        await client.get("/")
                    assert await held.read() == b"ok"
                # released: a waiter now gets the same connection
                first = asyncio.create_task(client.get("/"))
                second = asyncio.create_task(client.get("/", timeout=5))
                assert [r.content for r in await asyncio.gather(first, second)] == [b"ok", b"ok"]
                assert server.connections == 1
    run(main)


def test_connect_error_on_a_closed_port(run):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    async def main():
        async with Client() as client:
            with pytest.raises(ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")
    run(main)


def test_connect_timeout_when_the_listen_queue_is_full(run):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))   # fills the queue: SYNs now drop

    async def main():
        async with Client(timeout=ClientTimeouts(connect_s=0.3)) as client:
            with pytest.raises(ConnectTimeout):
                await client.get(f"http://127.0.0.1:{port}/")
            assert client.pool.total == 0
    try:
        run(main)
    finally:
        filler.close()
        listener.close()


def test_cancelled_request_discards_its_connection(run):
    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            await asyncio.sleep(0.3)
            await peer.send(OK)

    async def main():
        async with raw_server(handler) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                task = asyncio.create_task(client.get("/"))
                await asyncio.sleep(0.1)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                await until(lambda: client.pool.total == 0)
                assert (await client.get("/")).content == b"ok"
                assert server.connections == 2
    run(main)


def test_closed_client_refuses_requests(run):
    async def main():
        client = Client()
        await client.aclose()
        with pytest.raises(ClientError):
            await client.get("http://127.0.0.1:1/")
    run(main)


def test_early_response_from_a_server_that_stops_reading_but_stays_open(run):
    async def handler(peer: Peer) -> None:
        await peer.reader.readuntil(b"\r\n\r\n")
        await peer.send(response(401, b"who are you?", reason="Unauthorized"))
        await asyncio.sleep(10)   # never reads the body, never closes

    async def body():
        for _ in range(4096):
            yield b"u" * 65536

    async def main():
        async with raw_server(handler) as server:
            timeouts = ClientTimeouts(write_s=5)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeouts) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                resp = await client.put("/", content=body())
                assert resp.status == 401 and resp.content == b"who are you?"
                assert loop.time() - start < 2    # not the write timeout
                await until(lambda: client.pool.total == 0)   # framing unfinished: closed
    run(main)
