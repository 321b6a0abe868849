"""The total timeout of a piece-by-piece upload (``Client.stream_request``): the caller paces the
body, so the total leaves the writes out and bounds the wait for the response head from
``finish()``.  Real sockets; the servers are scripted byte for byte."""
from __future__ import annotations

import asyncio

import pytest

from cyserve.client import Client, ClientTimeouts, TotalTimeout
from tests.client.peers import Peer, raw_server, response

PIECES = [b"piece-%d;" % i for i in range(6)]
GAP_S = 0.1  # six pieces 0.1 s apart: about twice the total below
TOTAL_S = 0.3


async def answer_after_the_body(peer: Peer) -> None:
    while (exchange := await peer.request()) is not None:
        _, body = exchange
        await peer.send(response(200, b"got %d bytes" % len(body)))


async def never_answer(peer: Peer) -> None:
    await peer.request()
    await asyncio.sleep(30)  # cancelled when the server closes


async def write_slowly(req) -> None:
    for piece in PIECES:
        await req.write(piece)
        await asyncio.sleep(GAP_S)


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_stream_request_upload_slower_than_the_total_succeeds(run, framing):
    async def main():
        async with raw_server(answer_after_the_body) as server:
            body = b"".join(PIECES)
            headers = {"Content-Length": str(len(body))} if framing == "content-length" else None
            timeouts = ClientTimeouts(read_s=5.0, total_s=TOTAL_S)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeouts) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                async with client.stream_request("PUT", "/upload", headers=headers) as req:
                    await write_slowly(req)
                    assert loop.time() - start > TOTAL_S  # the upload outlived the total
                    resp = await req.finish()
                    assert resp.status == 200
                    assert await resp.read() == b"got %d bytes" % len(body)
            assert server.requests[0][1] == body
    run(main)


def test_a_server_silent_after_a_stream_request_upload_hits_the_total(run):
    async def main():
        async with raw_server(never_answer) as server:
            # read_s off: only the total can end the wait for a head that never comes.
            timeouts = ClientTimeouts(read_s=None, total_s=TOTAL_S)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeouts) as client:
                loop = asyncio.get_running_loop()
                with pytest.raises(TotalTimeout):
                    async with client.stream_request("PUT", "/upload") as req:
                        await write_slowly(req)
                        finished = loop.time()
                        await req.finish()
                waited = loop.time() - finished
                # Counted from finish(), not from the start of the upload.
                assert TOTAL_S * 0.8 <= waited < 2.0
                assert client.pool.total == 0
    run(main)
