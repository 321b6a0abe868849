"""zstd over real sockets: the cyserve Client against a cyserve server with Compression (both
directions, negotiated by q-value next to br/gzip/deflate, streamed responses decoded as they
arrive), and against raw servers sending bombs and oversized windows."""
from __future__ import annotations

import asyncio
import os

import pytest

import cyserve.client.decompress as decompress_module
from cyserve import App, Limits, Response, StreamResponse
from cyserve.client import Client, ClientLimits, DecodingError
from cyserve.codecs import zstd_module
from cyserve.compression import Compression
from tests.client.peers import Peer, raw_server, response
from tests.support import serving

zstd = zstd_module()
if zstd is None:
    pytest.skip("the zstd extra is not installed", allow_module_level=True)

TEXT = ("The quick brown fox jumps over the lazy dog. " * 400).encode()


def zstd_app() -> App:
    app = App(limits=Limits(max_body_bytes=256 * 1024))
    app.use(Compression(encodings=("br", "zstd", "gzip", "deflate")))

    @app.get("/text")
    async def text(request):
        return Response(TEXT, headers=[("X-Accept-Encoding", request.headers.get("accept-encoding") or "-")],
                        content_type="text/plain")

    @app.get("/events")
    async def events(request):
        async def gen():
            for i in range(3):
                yield f"data: event {i} ".encode() * 40 + b"\n\n"
                await asyncio.sleep(0.05)
        return StreamResponse(gen(), content_type="text/event-stream")

    @app.post("/size")
    async def size(request):
        body = await request.body()
        return {"size": len(body), "head": body[:10].decode("latin-1")}

    return app


def test_the_client_offers_zstd_and_decodes_it(run):
    async def main():
        async with serving(zstd_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                default = await client.get("/text")
                assert default.headers["x-accept-encoding"] == "gzip, deflate, br, zstd"
                assert default.headers["content-encoding"] == "br"   # the server's order breaks the tie
                only = await client.get("/text", headers={"Accept-Encoding": "zstd"})
                assert only.headers["content-encoding"] == "zstd" and only.content == TEXT
            async with Client(base_url=f"http://127.0.0.1:{server.port}", decode=False) as client:
                raw = await client.get("/text", headers={"Accept-Encoding": "zstd"})
                assert len(raw.content) < len(TEXT) and zstd.decompress(raw.content) == TEXT
    run(main)


@pytest.mark.parametrize("accept,chosen", [
    ("br;q=0.5, zstd;q=0.9, gzip;q=0.1", "zstd"),
    ("zstd;q=0.2, gzip", "gzip"),
    ("zstd;q=0, deflate;q=0.1", "deflate"),
    ("gzip, zstd", "zstd"),
    ("*", "br"),
], ids=["higher-q", "lower-q", "q-zero", "server-order", "star"])
def test_zstd_is_negotiated_by_q_value(run, accept, chosen):
    async def main():
        async with serving(zstd_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                resp = await client.get("/text", headers={"Accept-Encoding": accept})
                assert resp.headers["content-encoding"] == chosen
                assert resp.content == TEXT
    run(main)


def test_a_streamed_zstd_response_decodes_chunk_by_chunk(run):
    async def main():
        async with serving(zstd_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                headers = {"Accept-Encoding": "zstd"}
                async with client.stream("GET", "/events", headers=headers) as resp:
                    assert resp.headers["content-encoding"] == "zstd"
                    seen = b""
                    async for chunk in resp.iter_bytes():
                        seen += chunk
                        # each event arrives whole: the server flushed its compressor per write
                        assert seen.endswith(b"\n\n")
                assert seen.count(b"\n\n") == 3 and b"data: event 2" in seen
    run(main)


def test_zstd_request_bodies_are_decoded_within_the_body_limit(run):
    async def main():
        async with serving(zstd_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                headers = {"Content-Encoding": "zstd"}
                ok = await client.post("/size", content=zstd.compress(b"hello " * 1000), headers=headers)
                assert ok.status == 200 and await ok.json() == {"size": 6000, "head": "hello hell"}
                # a few hundred bytes on the wire, 8 MiB decoded: past the 256 KiB body limit
                bomb = zstd.compress(b"\0" * (8 * 1024 * 1024))
                assert len(bomb) < 1024
                assert (await client.post("/size", content=bomb, headers=headers)).status == 413
                garbage = await client.post("/size", content=b"not zstd at all", headers=headers)
                assert garbage.status == 400
    run(main)


def serve_once(body: bytes, headers: list[tuple[str, str]]):
    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(response(200, body, headers))
    return handler


@pytest.mark.parametrize("streamed", [False, True], ids=["get", "stream"])
def test_a_zstd_bomb_is_refused_by_max_decoded_bytes(run, streamed):
    bomb = zstd.compress(b"\0" * (64 * 1024 * 1024))   # about 2 KB on the wire

    async def main():
        async with raw_server(serve_once(bomb, [("Content-Encoding", "zstd")])) as server:
            limits = ClientLimits(max_decoded_bytes=4 * 1024 * 1024)
            async with Client(limits=limits) as client:
                with pytest.raises(DecodingError, match="max_decoded_bytes"):
                    if streamed:
                        async with client.stream("GET", f"http://127.0.0.1:{server.port}/") as resp:
                            async for _ in resp.iter_bytes():
                                pass
                    else:
                        await client.get(f"http://127.0.0.1:{server.port}/")
    run(main)


def test_a_zstd_frame_asking_for_a_huge_window_is_refused(run):
    params = zstd.CompressionParameter
    compressor = zstd.ZstdCompressor(options={params.window_log: 27})
    frame = compressor.compress(os.urandom(1000) * 20) + compressor.flush()

    async def main():
        async with raw_server(serve_once(frame, [("Content-Encoding", "zstd")])) as server:
            async with Client() as client:
                with pytest.raises(DecodingError, match="undecodable zstd"):
                    await client.get(f"http://127.0.0.1:{server.port}/")
    run(main)


def test_without_the_binding_zstd_is_neither_offered_nor_decoded(run, monkeypatch):
    monkeypatch.setattr(decompress_module, "zstd_module", lambda: None)
    body = zstd.compress(TEXT)

    async def handler(peer: Peer) -> None:
        while (request := await peer.request()) is not None:
            accept = dict(request[0].headers).get(b"accept-encoding", b"").decode()
            await peer.send(response(200, body, [("Content-Encoding", "zstd"),
                                                 ("X-Accept-Encoding", accept)]))

    async def main():
        async with raw_server(handler) as server:
            async with Client() as client:
                resp = await client.get(f"http://127.0.0.1:{server.port}/")
                assert resp.headers["x-accept-encoding"] == "gzip, deflate, br"
                assert resp.content == body   # an unknown coding is left as received
    run(main)
