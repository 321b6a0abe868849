"""Client <-> cyserve server round trips: every body kind, chunked both ways, HEAD/204/304
framing, keep-alive reuse seen on the server, pool limits, streaming with backpressure."""
from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest

from cyserve import App, Response, StreamResponse
from cyserve.client import (
    Client, ClientLimits, HTTPStatusError, ResponseTooLarge, DecodingError, TooManyRedirects,
)
from tests.support import serving


def echo_app() -> App:
    app = App()

    @app.route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def echo(request):
        body = await request.body()
        h = request.headers
        return Response(body, 200, [
            ("X-Method", request.method),
            ("X-Content-Type", h.get("content-type") or "-"),
            ("X-Content-Length", h.get("content-length") or "-"),
            ("X-Transfer-Encoding", h.get("transfer-encoding") or "-"),
            ("X-Accept-Encoding", h.get("accept-encoding") or "-"),
            ("X-Cookie", h.get("cookie") or "-"),
            ("X-Authorization", h.get("authorization") or "-"),
            ("X-Query", request.query_string or "-"),
        ], "application/octet-stream")

    @app.route("/text", methods=["GET", "HEAD"])
    async def text(request):
        return Response("twelve bytes", 200, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])

    @app.get("/none")
    async def none(request):
        return None   # 204

    @app.get("/not-modified")
    async def not_modified(request):
        return Response(b"", 304, [("ETag", '"v1"')])

    @app.get("/chunked")
    async def chunked(request):
        n = int(request.query.get("n", "10"))

        async def gen():
            for i in range(n):
                yield f"piece-{i};".encode()
        return StreamResponse(gen(), content_type="text/plain")

    @app.get("/big")
    async def big(request):
        mb = int(request.query.get("mb", "1"))
        piece = bytes(range(256)) * 256   # 64 KiB

        async def gen():
            for _ in range(mb * 16):
                yield piece
        return StreamResponse(gen(), content_type="application/octet-stream")

    @app.get("/gzip")
    async def gz(request):
        coding = request.query.get("coding", "gzip")
        payload = b"compressible " * 20000
        if coding == "gzip":
            data = gzip.compress(payload)
        elif coding == "deflate":
            data = zlib.compress(payload)
        else:
            import brotli
            data = brotli.compress(payload)
        return Response(data, 200, [("Content-Encoding", coding)], "text/plain")

    @app.get("/json")
    async def js(request):
        return {"hello": "world", "n": [1, 2, 3]}

    @app.get("/status/{code}")
    async def status(request):
        code = int(request.path_params["code"])
        return Response(b"status body", code)

    @app.get("/redirect/{code}")
    async def redirect(request):
        code = int(request.path_params["code"])
        return Response(b"", code, [("Location", request.query.get("to", "/echo"))])

    @app.route("/redirect-post/{code}", methods=["POST", "PUT"])
    async def redirect_post(request):
        code = int(request.path_params["code"])
        return Response(b"", code, [("Location", "/echo")])

    @app.get("/loop")
    async def loop(request):
        return Response(b"", 302, [("Location", "/loop")])

    @app.get("/set-cookie")
    async def set_cookie(request):
        return Response(b"", 302, [("Set-Cookie", "session=abc; Path=/"), ("Location", "/echo")])

    return app


@pytest.mark.parametrize("kind", ["bytes", "str", "json", "data", "files", "async-iter",
                                  "sync-iter", "fileobj", "path", "iter-with-length"])
def test_every_body_kind_round_trips(run, tmp_path, kind):
    blob = bytes(range(256)) * 1000   # 256 KB, bigger than one coalesced write
    path = tmp_path / "upload.bin"
    path.write_bytes(blob)

    async def agen():
        for i in range(0, len(blob), 50000):
            yield blob[i:i + 50000]
            await asyncio.sleep(0)

    async def main():
        async with serving(echo_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                expect_te = "-"
                if kind == "bytes":
                    resp = await client.post("/echo", content=blob)
                    expect, expect_ct = blob, "-"
                elif kind == "str":
                    resp = await client.put("/echo", content="h\u00e9llo")
                    expect, expect_ct = "h\u00e9llo".encode(), "text/plain; charset=utf-8"
                elif kind == "json":
                    resp = await client.patch("/echo", json={"a": [1, 2], "b": None})
                    expect, expect_ct = b'{"a":[1,2],"b":null}', "application/json"
                elif kind == "data":
                    resp = await client.post("/echo", data={"a": "1 2", "b": ["x", "y"]})
                    expect, expect_ct = b"a=1+2&b=x&b=y", "application/x-www-form-urlencoded"
                elif kind == "files":
                    with path.open("rb") as f:
                        resp = await client.post("/echo", data={"field": "v"}, files={"up": f})
                    body = resp.content
                    assert resp.headers["x-content-type"].startswith("multipart/form-data; boundary=")
                    assert resp.headers["x-content-length"] == str(len(body))
                    assert blob in body and b'filename="upload.bin"' in body
                    return
                elif kind == "async-iter":
                    resp = await client.post("/echo", content=agen())
                    expect, expect_ct, expect_te = blob, "-", "chunked"
                elif kind == "sync-iter":
                    resp = await client.post("/echo", content=iter([b"a", b"", b"bc"]))
                    expect, expect_ct, expect_te = b"abc", "-", "chunked"
                elif kind == "fileobj":
                    with path.open("rb") as f:
                        f.seek(1000)
                        resp = await client.put("/echo", content=f)
                    expect, expect_ct = blob[1000:], "-"
                elif kind == "path":
                    resp = await client.put("/echo", content=path)
                    expect, expect_ct = blob, "-"
                else:
                    resp = await client.put("/echo", content=agen(),
                                            headers={"Content-Length": str(len(blob))})
                    expect, expect_ct = blob, "-"
                assert resp.status == 200
                assert resp.content == expect
                assert resp.headers["x-content-type"] == expect_ct
                assert resp.headers["x-transfer-encoding"] == expect_te
                if expect_te == "-":
                    assert resp.headers["x-content-length"] == str(len(expect))
    run(main)


def test_empty_post_sends_content_length_zero_and_get_sends_none(run):
    async def main():
        async with serving(echo_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                assert (await client.post("/echo")).headers["x-content-length"] == "0"
                assert (await client.get("/echo")).headers["x-content-length"] == "-"
                assert (await client.delete("/echo")).headers["x-method"] == "DELETE"
    run(main)


def test_chunked_response_is_decoded_and_streamed(run):
    async def main():
        async with serving(echo_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                resp = await client.get("/chunked", params={"n": 500})
                assert resp.headers["transfer-encoding"] == "chunked"
                assert (await resp.text()) == "".join(f"piece-{i};" for i in range(500))
                async with client.stream("GET", "/chunked?n=3") as resp:
                    lines = [chunk async for chunk in resp.iter_bytes()]
                assert b"".join(lines) == b"piece-0;piece-1;piece-2;"
                assert len(server.state.connections) == 1
    run(main)


def test_head_204_and_304_have_no_body_and_keep_the_connection(run):
    async def main():
        async with serving(echo_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                resp = await client.head("/text")
                assert resp.status == 200 and resp.content == b""
                assert resp.headers["content-length"] == "12"
                resp = await client.get("/none")
                assert resp.status == 204 and resp.content == b""
                resp = await client.get("/not-modified")
                assert resp.status == 304 and resp.content == b"" and resp.headers["etag"] == '"v1"'
                resp = await client.get("/text")
                assert await resp.text() == "twelve bytes"
                assert resp.headers.getlist("set-cookie") == ["a=1", "b=2"]
                [stream] = server.state.connections
                assert stream.role.requests_served == 4
    run(main)


def test_keep_alive_reuses_one_connection_for_sequential_requests(run):
    async def main():
        async with serving(echo_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                for i in range(25):
                    resp = await client.get("/echo", params={"i": i})
                    assert resp.headers["x-query"] == f"i={i}"
                [stream] = server.state.connections
                assert stream.role.requests_served == 25
                assert client.pool.total == 1 and client.pool.idle_count() == 1
    run(main)


def test_pool_limits_bound_the_connections_per_host(run):
    async def main():
        app = App()
        gate = asyncio.Event()
        seen = 0

        @app.get("/slow")
        async def slow(request):
            nonlocal seen
            seen += 1
            await gate.wait()
            return "ok"

        async with serving(app) as server:
            limits = ClientLimits(max_connections_per_host=3)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", limits=limits) as client:
                tasks = [asyncio.create_task(client.get("/slow")) for _ in range(10)]
                while seen < 3:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.1)
                assert len(server.state.connections) == 3 and seen == 3
                gate.set()
                results = await asyncio.gather(*tasks)
                assert all(r.status == 200 for r in results)
                assert len(server.state.connections) == 3 and client.pool.total == 3
    run(main)


def test_slow_consumer_pauses_reading_and_memory_stays_bounded(run):
    async def main():
        async with serving(echo_app()) as server:
            limits = ClientLimits(read_high=128 * 1024, read_low=32 * 1024)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", limits=limits) as client:
                async with client.stream("GET", "/big", params={"mb": 64}) as resp:
                    stream = resp._body
                    chunks = resp.iter_raw()
                    first = await chunks.__anext__()
                    await asyncio.sleep(0.3)   # a slow consumer
                    assert resp._conn.reading_paused
                    assert stream.buffered <= 128 * 1024 + 65536 * 2
                    total = len(first)
                    async for chunk in chunks:
                        total += len(chunk)
                    assert total == 64 * 1024 * 1024
                    assert not resp._conn.reading_paused
    run(main)


def test_closing_a_stream_early_discards_its_connection(run):
    async def main():
        async with serving(echo_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                async with client.stream("GET", "/big", params={"mb": 16}) as resp:
                    async for _ in resp.iter_bytes():
                        break
                assert client.pool.idle_count() == 0
                resp = await client.get("/text")   # a new connection, framing intact
                assert await resp.text() == "twelve bytes"
    run(main)


def test_stream_request_writes_as_data_arrives(run):
    async def main():
        async with serving(echo_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                async with client.stream_request("PUT", "/echo", headers={"X-A": "1"}) as req:
                    for i in range(20):
                        await req.write(b"%d," % i)
                    resp = await req.finish()
                    assert resp.headers["x-transfer-encoding"] == "chunked"
                    assert await resp.read() == b"".join(b"%d," % i for i in range(20))
                async with client.stream_request("POST", "/echo",
                                                 headers={"Content-Length": "6"}) as req:
                    await req.write(b"abc")
                    await req.write(b"def")
                    resp = await req.finish()
                    assert resp.headers["x-content-length"] == "6"
                    assert await resp.read() == b"abcdef"
                with pytest.raises(ValueError, match="short"):
                    async with client.stream_request("POST", "/echo",
                                                     headers={"Content-Length": "6"}) as req:
                        await req.write(b"abc")
                        await req.finish()
                assert len(server.state.connections) <= 2
    run(main)


def test_gzip_deflate_br_are_decoded_and_accept_encoding_is_sent(run):
    async def main():
        async with serving(echo_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                resp = await client.get("/echo")
                assert "gzip" in resp.headers["x-accept-encoding"]
                for coding in ("gzip", "deflate") + (("br",) if "br" in resp.headers["x-accept-encoding"] else ()):
                    resp = await client.get("/gzip", params={"coding": coding})
                    assert resp.content == b"compressible " * 20000
            limits = ClientLimits(max_decoded_bytes=100_000)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", limits=limits) as client:
                with pytest.raises(DecodingError):
                    await client.get("/gzip")
            async with Client(base_url=f"http://127.0.0.1:{server.port}", decode=False) as client:
                resp = await client.get("/gzip")
                assert gzip.decompress(resp.content) == b"compressible " * 20000
    run(main)


def test_json_status_errors_and_body_limits(run):
    async def main():
        async with serving(echo_app()) as server:
            limits = ClientLimits(max_body_bytes=1000)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", limits=limits) as client:
                assert await (await client.get("/json")).json() == {"hello": "world", "n": [1, 2, 3]}
                resp = await client.get("/status/404")
                assert resp.status == 404 and not resp.is_success
                with pytest.raises(HTTPStatusError) as info:
                    resp.raise_for_status()
                assert info.value.status == 404 and info.value.response is resp
                assert (await client.get("/status/201")).raise_for_status().status == 201
                with pytest.raises(ResponseTooLarge):
                    await client.get("/big")
                assert (await client.get("/text")).status == 200
    run(main)


def test_redirects_follow_rules_and_record_history(run):
    async def main():
        async with serving(echo_app()) as server:
            base = f"http://127.0.0.1:{server.port}"
            async with Client(base_url=base) as client:
                resp = await client.get("/redirect/302")
                assert resp.status == 200 and resp.url == base + "/echo"
                assert [r.status for r in resp.history] == [302]
                for code, method, body in ((303, "GET", b""), (302, "GET", b""), (301, "GET", b""),
                                           (307, "POST", b"payload"), (308, "POST", b"payload")):
                    resp = await client.post(f"/redirect-post/{code}", content=b"payload")
                    assert resp.headers["x-method"] == method and resp.content == body, code
                resp = await client.put("/redirect-post/303", content=b"x")
                assert resp.headers["x-method"] == "GET"
                with pytest.raises(TooManyRedirects):
                    await client.get("/loop")
                resp = await client.get("/redirect/302", follow_redirects=False)
                assert resp.status == 302 and resp.headers["location"] == "/echo"
                assert len(server.state.connections) == 1   # redirect bodies drained, reused
    run(main)


def test_redirect_to_another_origin_drops_authorization_and_cookie(run):
    async def main():
        async with serving(echo_app()) as a, serving(echo_app()) as b:
            other = f"http://127.0.0.1:{b.port}/echo"
            async with Client(base_url=f"http://127.0.0.1:{a.port}", auth=("u", "p")) as client:
                resp = await client.get("/redirect/302", params={"to": "/echo"},
                                        headers={"Cookie": "k=v"})
                assert resp.headers["x-authorization"].startswith("Basic ")
                assert resp.headers["x-cookie"] == "k=v"
                resp = await client.get("/redirect/302", params={"to": other},
                                        headers={"Cookie": "k=v"})
                assert resp.url == other
                assert resp.headers["x-authorization"] == "-" and resp.headers["x-cookie"] == "-"
    run(main)


def test_cookie_jar_is_opt_in_and_follows_redirects(run):
    async def main():
        async with serving(echo_app()) as server:
            base = f"http://127.0.0.1:{server.port}"
            async with Client(base_url=base) as client:
                resp = await client.get("/set-cookie")
                assert resp.headers["x-cookie"] == "-"
            async with Client(base_url=base, cookies=True) as client:
                resp = await client.get("/set-cookie")
                assert resp.headers["x-cookie"] == "session=abc"
                assert client.cookies.get("session") == "abc"
                resp = await client.get("/echo")
                assert resp.headers["x-cookie"] == "session=abc"
    run(main)


def test_module_level_helpers(run):
    from cyserve import client as http

    async def main():
        async with serving(echo_app()) as server:
            url = f"http://127.0.0.1:{server.port}"
            assert (await (await http.get(url + "/text")).text()) == "twelve bytes"
            resp = await http.post(url + "/echo", json={"a": 1}, timeout=5)
            assert resp.content == b'{"a":1}'
    run(main)


def test_idle_connections_expire(run):
    async def main():
        async with serving(echo_app()) as server:
            limits = ClientLimits(keepalive_expiry_s=0.1)
            async with Client(base_url=f"http://127.0.0.1:{server.port}", limits=limits) as client:
                assert (await client.get("/text")).status == 200
                assert client.pool.idle_count() == 1
                await asyncio.sleep(0.3)
                assert client.pool.total == 0 and client.pool.idle_count() == 0
                assert (await client.get("/text")).status == 200
    run(main)


def test_total_limit_evicts_an_idle_connection_of_another_origin(run):
    async def main():
        async with serving(echo_app()) as a, serving(echo_app()) as b:
            limits = ClientLimits(max_connections=1)
            async with Client(limits=limits) as client:
                assert (await client.get(f"http://127.0.0.1:{a.port}/text")).status == 200
                assert (await client.get(f"http://127.0.0.1:{b.port}/text")).status == 200
                assert client.pool.total == 1
                assert (await client.get(f"http://127.0.0.1:{a.port}/text")).status == 200
    run(main)


def test_request_head_from_the_client_is_what_the_server_parses(run):
    """One codec, two roles: the client's writer output is read by the server's parser."""
    async def main():
        async with serving(echo_app()) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}",
                              headers={"X-Default": "d"}) as client:
                resp = await client.options("/echo", params={"q": "a b&c"},
                                            headers={"X-Default": "override"})
                assert resp.headers["x-method"] == "OPTIONS"
                assert resp.headers["x-query"] == "q=a+b%26c"
                with pytest.raises(ValueError):
                    await client.get("/echo", headers={"X-Evil": "a\r\nInjected: 1"})
                assert (await client.get("/text")).status == 200   # still usable
    run(main)
