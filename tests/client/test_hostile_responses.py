"""Servers that try to hold or crash the client: a response dripping a byte at a time, and
content codings stacked thousands deep.  The servers are raw asyncio servers, byte for byte."""
from __future__ import annotations

import asyncio
import functools
import gzip
import zlib

import brotli
import pytest

from cyserve.client import Client, ClientTimeouts, DecodingError, TotalTimeout
from cyserve.codecs import MAX_CODINGS
from tests.client.peers import Peer, raw_server, response

BODY = b"x" * 40


def test_the_total_timeout_is_on_by_default():
    # Checked as a value: waiting five minutes for it proves nothing more.
    assert ClientTimeouts().total_s == 300.0
    assert Client().timeouts.total_s == 300.0


async def drip(peer: Peer, data: bytes, gap_s: float) -> None:
    """Send ``data`` one byte at a time, ``gap_s`` apart: never silent long enough for read_s."""
    for i in range(len(data)):
        await peer.send(data[i:i + 1])
        await asyncio.sleep(gap_s)


@pytest.mark.parametrize("streamed", [False, True], ids=["get", "stream"])
def test_total_timeout_ends_a_response_dripping_from_its_first_byte(run, streamed):
    async def handler(peer: Peer) -> None:
        await peer.request()
        await drip(peer, response(200, BODY), 0.05)

    async def main():
        async with raw_server(handler) as server:
            # read_s (30 s by default) never fires on a drip: only the total ends it.
            timeouts = ClientTimeouts(total_s=0.4)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeouts) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                with pytest.raises(TotalTimeout):
                    if streamed:
                        async with client.stream("GET", "/"):
                            pass
                    else:
                        await client.get("/")
                assert loop.time() - start < 2.0
                assert client.pool.total == 0
    run(main)


async def slow_body(peer: Peer) -> None:
    """A head at once, then the body in ten pieces 0.1 s apart (about 1 s in all)."""
    await peer.request()
    await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY))
    for i in range(0, len(BODY), 4):
        await asyncio.sleep(0.1)
        await peer.send(BODY[i:i + 4])


def test_a_streamed_body_outlives_the_total_which_ends_at_the_head(run):
    async def main():
        async with raw_server(slow_body) as server:
            timeouts = ClientTimeouts(read_s=0.5, total_s=0.3)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeouts) as client:
                async with client.stream("GET", "/") as resp:
                    assert resp.status == 200
                    received = b"".join([chunk async for chunk in resp.iter_bytes()])
                assert received == BODY
                # The same body read by get() is the client's to read: the total covers it.
                with pytest.raises(TotalTimeout):
                    await client.get("/")
    run(main)


def test_a_redirect_body_read_for_a_stream_is_bounded_by_the_total(run):
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 100\r\n\r\n")
        await drip(peer, b"y" * 100, 0.05)

    async def main():
        async with raw_server(handler) as server:
            timeouts = ClientTimeouts(total_s=0.4)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeouts) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                with pytest.raises(TotalTimeout):
                    async with client.stream("GET", "/"):
                        pass
                assert loop.time() - start < 2.0
    run(main)


@functools.lru_cache(maxsize=None)
def nested_gzip(layers: int) -> bytes:
    data = BODY
    for _ in range(layers):
        data = gzip.compress(data, compresslevel=0)  # stored blocks: fast, and the size stays linear
    return data


def test_thousands_of_stacked_codings_raise_decoding_error_not_recursion_error(run):
    layers = 2000
    answer = response(200, nested_gzip(layers), [("Content-Encoding", ", ".join(["gzip"] * layers))])

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(answer)

    async def main():
        async with raw_server(handler) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                with pytest.raises(DecodingError, match=f"{layers} content codings stacked; "
                                                        f"at most {MAX_CODINGS}"):
                    await client.get("/")
                async with client.stream("GET", "/") as resp:
                    with pytest.raises(DecodingError, match="content codings stacked"):
                        async for _ in resp.iter_bytes():
                            pass
                async with client.stream("GET", "/") as resp:  # as received, it is still there
                    raw = b"".join([chunk async for chunk in resp.iter_raw()])
                    assert raw == nested_gzip(layers)
    run(main)


def test_the_most_stacked_codings_allowed_still_decode(run):
    codings = (["gzip", "deflate", "br"] * MAX_CODINGS)[:MAX_CODINGS] + ["identity"]
    data = BODY
    for coding in codings:
        if coding == "gzip":
            data = gzip.compress(data)
        elif coding == "deflate":
            data = zlib.compress(data)
        elif coding == "br":
            data = brotli.compress(data)
    answer = response(200, data, [("Content-Encoding", ", ".join(codings))])

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer)

    async def main():
        async with raw_server(handler) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                resp = await client.get("/")
                assert resp.content == BODY
    run(main)
