"""Compression over real sockets: each coding decoded back by the client, negotiation, the
responses left alone, streaming with one flushed compressor, static files, request bodies."""
from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import os
import zlib

import brotli
import h11
import pytest

from cyserve import App, Response, StreamResponse
from cyserve.compression import Compression
from cyserve.static import StaticFiles
from tests.support import RawClient, load_example, serving

TEXT = ("The quick brown fox jumps over the lazy dog. " * 200).encode()
DECODE = {"br": brotli.decompress, "gzip": gzip.decompress, "deflate": zlib.decompress}


def decoder_for(coding: str):
    """An incremental decoder that proves the body is one stream, not one per chunk."""
    if coding == "br":
        d = brotli.Decompressor()
        return d.process, d.is_finished
    d = zlib.decompressobj(31 if coding == "gzip" else 15)
    return d.decompress, lambda: d.eof and not d.unused_data


def make_app(**kw) -> App:
    app = App()
    compress = Compression(**kw)

    def route(path, methods=("GET",)):
        def register(handler):
            app.route(path, methods=list(methods))(compress(handler))
            return handler
        return register

    @route("/text", ("GET", "HEAD"))
    async def text(request):
        return Response(TEXT, headers={"ETag": '"v1"', "Accept-Ranges": "none"},
                        content_type="text/plain; charset=utf-8")

    @route("/json")
    async def json_(request):
        return {"items": list(range(300))}

    @route("/small")
    async def small(request):
        return "tiny"

    @route("/png")
    async def png(request):
        return Response(b"\x89PNG" + b"\0" * 5000, content_type="image/png")

    @route("/already")
    async def already(request):
        return Response(gzip.compress(TEXT), headers={"Content-Encoding": "gzip"}, content_type="text/plain")

    @route("/no-transform")
    async def no_transform(request):
        return Response(TEXT, headers={"Cache-Control": "no-transform"}, content_type="text/plain")

    @route("/empty")
    async def empty(request):
        return None

    @route("/echo", ("POST",))
    async def echo(request):
        body = await request.body()
        return {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    return app


@pytest.mark.parametrize("coding", ["br", "gzip", "deflate"])
def test_each_coding_round_trips_on_a_whole_response(run, coding):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/text", [("Accept-Encoding", coding)])
            assert reply.status == 200 and reply.headers["content-encoding"] == coding
            assert reply.headers["vary"] == "Accept-Encoding"
            assert reply.headers["etag"] == 'W/"v1"'  # the bytes differ: a strong tag would lie
            assert "accept-ranges" not in reply.headers
            assert int(reply.headers["content-length"]) == len(reply.body) < len(TEXT) // 10
            assert DECODE[coding](reply.body) == TEXT
            as_json = await client.request("GET", "/json", [("Accept-Encoding", coding)])
            assert as_json.headers["content-encoding"] == coding
            assert DECODE[coding](as_json.body).startswith(b'{"items":[0,1,2')
            await client.close()
    run(main)


def test_negotiation_and_the_responses_left_alone(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)

            async def fetch(target, accept="gzip, br", method="GET"):
                fields = [] if accept is None else [("Accept-Encoding", accept)]
                return await client.request(method, target, fields)

            for accept, coding in (("br;q=0, gzip", "gzip"), ("deflate;q=0.5, gzip;q=0.4", "deflate"),
                                   ("identity", None), ("*;q=0", None), (None, None), ("*", "br")):
                reply = await fetch("/text", accept)
                assert reply.headers.get("content-encoding") == coding, accept
                assert reply.headers["vary"] == "Accept-Encoding", accept
                assert (DECODE[coding](reply.body) if coding else reply.body) == TEXT
            small = await fetch("/small")
            assert small.body == b"tiny" and "content-encoding" not in small.headers
            assert small.headers["vary"] == "Accept-Encoding"
            png = await fetch("/png")
            assert "content-encoding" not in png.headers and "vary" not in png.headers
            already = await fetch("/already")
            assert already.headers["content-encoding"] == "gzip" and gzip.decompress(already.body) == TEXT
            kept = await fetch("/no-transform")
            assert kept.body == TEXT and "content-encoding" not in kept.headers
            assert (await fetch("/empty")).status == 204
            head = await fetch("/text", method="HEAD")
            assert head.body == b"" and "content-encoding" not in head.headers
            assert head.headers["vary"] == "Accept-Encoding" and head.headers["content-length"] == str(len(TEXT))
            await client.close()
    run(main)


class Incremental:
    """Reads one response event by event (h11), to look at a stream before it ends."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.conn = h11.Connection(h11.CLIENT)
        self.conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        self.conn.send(h11.EndOfMessage())

    async def next_event(self):
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await asyncio.wait_for(self.client.reader.read(65536), 5))


@pytest.mark.parametrize("coding", ["br", "gzip", "deflate"])
def test_a_stream_is_compressed_by_one_compressor_flushed_per_chunk(run, coding):
    async def main():
        gates = [asyncio.Event() for _ in range(3)]
        app = App()

        async def events(request):
            async def gen():
                for i, gate in enumerate(gates):
                    yield f"data: event {i} " + "x" * 300 + "\n\n"
                    await gate.wait()
            return StreamResponse(gen(), content_type="text/event-stream", content_length=None)

        app.route("/events")(Compression()(events))
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept-Encoding: %s\r\n\r\n" % coding.encode())
            reader = Incremental(client)
            head = await reader.next_event()
            fields = {k.decode(): v.decode() for k, v in head.headers}
            assert fields["content-encoding"] == coding and fields["vary"] == "Accept-Encoding"
            assert fields["transfer-encoding"] == "chunked" and "content-length" not in fields
            decode, finished = decoder_for(coding)
            text = b""
            for i, gate in enumerate(gates):
                # Event i decodes completely while the producer still waits on its gate.
                while f"event {i} ".encode() + b"x" * 300 + b"\n\n" not in text:
                    event = await reader.next_event()
                    assert isinstance(event, h11.Data), event
                    text += decode(event.data)
                assert not gate.is_set()
                gate.set()
            while True:
                event = await reader.next_event()
                if isinstance(event, h11.EndOfMessage):
                    break
                text += decode(event.data)
            assert finished(), "one compressed stream for the whole body"
            assert text == b"".join(f"data: event {i} ".encode() + b"x" * 300 + b"\n\n" for i in range(3))
            await client.close()
    run(main)


def test_static_files_compressed_on_the_fly_but_not_ranges(run, tmp_path):
    (tmp_path / "book.txt").write_bytes(TEXT * 50)  # several chunks
    (tmp_path / "photo.jpg").write_bytes(os.urandom(3000))

    async def main():
        app = App()
        app.route("/assets/{path:path}", methods=["GET", "HEAD"])(
            Compression()(StaticFiles(tmp_path, chunk_bytes=16 * 1024)))
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/assets/book.txt", [("Accept-Encoding", "gzip")])
            assert reply.headers["content-encoding"] == "gzip" and "content-length" not in reply.headers
            assert reply.headers["etag"].startswith('W/"') and "accept-ranges" not in reply.headers
            assert gzip.decompress(reply.body) == TEXT * 50
            ranged = await client.request("GET", "/assets/book.txt", [("Accept-Encoding", "gzip"),
                                                                     ("Range", "bytes=0-9")])
            assert ranged.status == 206 and ranged.body == TEXT[:10]
            assert "content-encoding" not in ranged.headers
            cached = await client.request("GET", "/assets/book.txt", [("Accept-Encoding", "gzip"),
                                                                     ("If-None-Match", reply.headers["etag"])])
            assert cached.status == 304
            photo = await client.request("GET", "/assets/photo.jpg", [("Accept-Encoding", "gzip")])
            assert "content-encoding" not in photo.headers and photo.headers["content-length"] == "3000"
            await client.close()
    run(main)


@functools.lru_cache(maxsize=None)
def bomb(coding: str) -> bytes:
    """32 MiB of zeros in well under 128 KiB."""
    return encode(coding, b"\0" * (32 * 1024 * 1024))


def encode(codings: str, data: bytes) -> bytes:
    for coding in codings.split(", "):
        if coding == "br":
            data = brotli.compress(data, quality=5)
        elif coding == "gzip":
            data = gzip.compress(data)
        elif coding == "deflate":
            data = zlib.compress(data)
        elif coding == "raw-deflate":
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = c.compress(data) + c.flush()
    return data


@pytest.mark.parametrize("size", [1000, 600_000], ids=["whole-body", "streamed-body"])
def test_request_bodies_are_decoded(run, size):
    payload = os.urandom(size // 2) + b"z" * (size - size // 2)
    expected = b'{"length":%d,"sha256":"%s"}' % (size, hashlib.sha256(payload).hexdigest().encode())

    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            for codings in ("gzip", "deflate", "br", "gzip, br", "identity"):
                body = encode(codings, payload)
                reply = await client.request("POST", "/echo", [("Content-Encoding", codings)], body)
                assert reply.status == 200 and reply.body == expected, codings
            raw = encode("raw-deflate", payload)
            reply = await client.request("POST", "/echo", [("Content-Encoding", "deflate")], raw)
            assert reply.body == expected
            await client.close()
    run(main)


def test_bad_request_encodings_are_415_400_and_bombs_413(run):
    async def main():
        async with serving(make_app(max_decoded_bytes=1024 * 1024)) as server:
            client = await RawClient.open(server.port)
            unknown = await client.request("POST", "/echo", [("Content-Encoding", "compress")], b"x" * 10)
            assert unknown.status == 415 and unknown.headers["accept-encoding"] == "br, gzip, deflate"
            await client.close()
            for body, headers in ((b"definitely not gzip", [("Content-Encoding", "gzip")]),
                                  (gzip.compress(TEXT)[:-20], [("Content-Encoding", "gzip")])):
                client = await RawClient.open(server.port)
                reply = await client.request("POST", "/echo", headers, body)
                assert reply.status == 400, body[:20]
                await client.close()
            for coding in ("gzip", "br", "deflate"):
                assert len(bomb(coding)) < 128 * 1024
                client = await RawClient.open(server.port)
                reply = await client.request("POST", "/echo", [("Content-Encoding", coding)], bomb(coding))
                assert reply.status == 413, coding
                await client.close()
            client = await RawClient.open(server.port)
            fine = await client.request("POST", "/echo", [("Content-Encoding", "gzip")],
                                        gzip.compress(b"\0" * (1024 * 1024)))
            assert fine.status == 200 and fine.body.startswith(b'{"length":1048576')
            await client.close()
    run(main)


def test_static_site_example_serves_compressed_pages(run):
    example = load_example("static_site")

    async def main():
        async with serving(example.app) as server:
            client = await RawClient.open(server.port)
            home = await client.request("GET", "/", [("Accept-Encoding", "br, gzip")])
            assert home.status == 200 and home.headers["content-encoding"] == "br"
            assert home.headers["content-type"] == "text/html; charset=utf-8"
            assert b"<title>cyserve static site</title>" in brotli.decompress(home.body)
            css = await client.request("GET", "/style.css", [("Accept-Encoding", "gzip")])
            assert css.headers["content-encoding"] == "gzip" and b":root" in gzip.decompress(css.body)
            assert css.headers["cache-control"] == "public, max-age=60"
            moved = await client.request("GET", "/about")
            assert moved.status == 301 and moved.headers["location"] == "/about/"
            about = await client.request("GET", "/about/")
            assert about.status == 200 and b"<h1>About</h1>" in about.body
            again = await client.request("GET", "/about/", [("If-None-Match", about.headers["etag"])])
            assert again.status == 304
            assert (await client.request("GET", "/../static_site.py")).status == 404
            await client.close()
    run(main)


def test_request_decoding_limit_follows_the_app_body_limit(run):
    import gzip as _gzip

    from cyserve import App, Compression, Limits
    from tests.support import RawClient, serving

    async def main():
        app = App(limits=Limits(max_body_bytes=64 * 1024))
        app.use(Compression())

        @app.post("/size")
        async def size(request):
            return {"size": len(await request.body())}

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            small = _gzip.compress(b"a" * 1000)
            ok = await client.request("POST", "/size", [("Content-Encoding", "gzip")], small)
            assert ok.status == 200 and ok.body == b'{"size":1000}'
            # 200 KB of zeros compresses to a few hundred bytes: within the wire limit, past the
            # App's 64 KB body limit once decoded.
            bomb = _gzip.compress(b"\0" * 200_000)
            assert len(bomb) < 64 * 1024
            refused = await client.request("POST", "/size", [("Content-Encoding", "gzip")], bomb)
            assert refused.status == 413
            await client.close()
    run(main)
