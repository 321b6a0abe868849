"""Real sockets on 127.0.0.1: keep-alive, pipelining, HTTP/1.0, HEAD, chunked in and out."""
from __future__ import annotations

import asyncio

from cyserve import App, Response, StreamResponse
from tests.support import RawClient, exchange, serving


def make_app() -> App:
    app = App()

    @app.get("/plaintext")
    async def plaintext(request):
        return Response(b"Hello, World!", content_type="text/plain")

    @app.get("/json")
    async def json_(request):
        return {"message": "Hello, World!"}

    @app.get("/slow/{ms:int}")
    async def slow(request):
        await asyncio.sleep(request.path_params["ms"] / 1000)
        return f"slept {request.path_params['ms']}"

    @app.post("/echo")
    async def echo(request):
        return Response(await request.body(), content_type="application/octet-stream")

    @app.post("/echo-stream")
    async def echo_stream(request):
        sizes = []
        async for chunk in request.stream():
            sizes.append(len(chunk))
        return {"total": sum(sizes)}

    @app.get("/stream")
    async def stream(request):
        async def parts():
            for i in range(3):
                yield f"part{i};"
        return StreamResponse(parts(), content_type="text/plain")

    @app.get("/query")
    async def query(request):
        return {"a": request.query.getlist("a"), "ua": request.headers.get("User-Agent")}

    return app


def test_keepalive_serves_several_requests_on_one_connection(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            first = await client.request("GET", "/plaintext")
            second = await client.request("GET", "/json")
            assert first.status == 200 and first.body == b"Hello, World!"
            assert first.headers["content-length"] == "13"
            assert first.headers["server"] == "cyserve" and first.headers["date"].endswith(" GMT")
            assert second.status == 200 and second.body == b'{"message":"Hello, World!"}'
            assert second.headers["content-type"] == "application/json"
            assert "connection" not in first.headers
            await client.close()
    run(main)


def test_pipelined_requests_are_answered_in_order(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            targets = ["/slow/80", "/plaintext", "/slow/10", "/json", "/plaintext"] * 3
            await client.send(b"".join(f"GET {t} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for t in targets))
            bodies = [(await client.response()).body for _ in targets]
            expected = {"/slow/80": b"slept 80", "/slow/10": b"slept 10", "/plaintext": b"Hello, World!",
                        "/json": b'{"message":"Hello, World!"}'}
            assert bodies == [expected[t] for t in targets]
            await client.close()
    run(main)


def test_http10_closes_unless_keepalive_is_asked(run):
    async def main():
        async with serving(make_app()) as server:
            raw = await exchange(server.port, b"GET /plaintext HTTP/1.0\r\n\r\n")
            assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\nHello, World!")
            assert b"Connection: close\r\n" in raw
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/plaintext", [("Connection", "keep-alive")], version="1.0")
            assert reply.headers["connection"] == "keep-alive"
            again = await client.request("GET", "/json", [("Connection", "keep-alive")], version="1.0")
            assert again.status == 200
            await client.close()
    run(main)


def test_http10_stream_is_delimited_by_close(run):
    async def main():
        async with serving(make_app()) as server:
            raw = await exchange(server.port, b"GET /stream HTTP/1.0\r\n\r\n")
            head, _, body = raw.partition(b"\r\n\r\n")
            assert b"Transfer-Encoding" not in head and b"Connection: close" in head
            assert body == b"part0;part1;part2;"
    run(main)


def test_head_sends_content_length_and_no_body(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("HEAD", "/json")
            assert reply.status == 200 and reply.body == b""
            assert reply.headers["content-length"] == "27"
            streamed = await client.request("HEAD", "/stream")
            assert streamed.status == 200 and streamed.body == b""
            after = await client.request("GET", "/plaintext")  # framing still in sync
            assert after.body == b"Hello, World!"
            await client.close()
    run(main)


def test_chunked_request_body_and_chunked_response(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n")
            reply = await client.response("POST")
            assert reply.body == b"hello world"
            streamed = await client.request("GET", "/stream")
            assert streamed.headers["transfer-encoding"] == "chunked"
            assert streamed.body == b"part0;part1;part2;"
            await client.close()
    run(main)


def test_chunked_request_body_arriving_in_pieces_streams_to_handler(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /echo-stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(20):
                await client.send(b"400\r\n" + b"x" * 1024 + b"\r\n")
                await asyncio.sleep(0.005)
            await client.send(b"0\r\n\r\n")
            reply = await client.response("POST")
            assert reply.status == 200 and reply.body == b'{"total":20480}'
            await client.close()
    run(main)


def test_content_length_body_arriving_late_is_streamed(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
            await asyncio.sleep(0.05)
            await client.send(b"56789")
            reply = await client.response("POST")
            assert reply.body == b"0123456789"
            await client.close()
    run(main)


def test_query_headers_and_405_allow(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/query?a=1&a=2&b", [("User-Agent", "probe/1")])
            assert reply.body == b'{"a":["1","2"],"ua":"probe/1"}'
            wrong = await client.request("PUT", "/json")
            assert wrong.status == 405 and wrong.headers["allow"] == "GET, HEAD, OPTIONS"
            missing = await client.request("GET", "/nope")
            assert missing.status == 404
            await client.close()
    run(main)


def test_empty_lines_before_request_line_are_ignored(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            await client.send(b"\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await client.response()).body == b"Hello, World!"
            await client.close()
    run(main)
