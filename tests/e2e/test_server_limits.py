"""Real sockets: bad input gets the right status and a close; everyone else keeps being served."""
from __future__ import annotations

import asyncio

import pytest

from cyserve import App, HTTPError, Limits, Timeouts
from tests.support import RawClient, exchange, serving


def make_app(**limits) -> App:
    app = App(limits=Limits(**limits) if limits else None,
              timeouts=Timeouts(first_request_s=0.5, head_s=0.5, body_idle_s=0.5, keepalive_s=0.5))

    @app.get("/ok")
    async def ok(request):
        return "ok"

    @app.post("/read")
    async def read(request):
        return {"size": len(await request.body())}

    @app.post("/ignore")
    async def ignore(request):
        return "ignored"

    @app.get("/boom")
    async def boom(request):
        raise RuntimeError("secret database password in this message")

    @app.get("/teapot")
    async def teapot(request):
        raise HTTPError(418, "short and stout", {"X-Why": "tea"})

    return app


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


async def still_serving(port: int) -> None:
    client = await RawClient.open(port)
    assert (await client.request("GET", "/ok")).body == b"ok"
    await client.close()


@pytest.mark.parametrize("raw, status", [
    (b"GET /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    (b"GET /ok HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400),
    (b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"GET /ok HTTP/1.1\nHost: x\n\n", 400),
    (b"GET /ok HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    (b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", 400),
    (b"GET /ok HTTP/1.1\r\n\r\n", 400),
    (b"GET /ok HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
], ids=["cl-and-te", "duplicate-cl", "cl-plus-sign", "unknown-coding", "bare-lf", "space-before-colon",
        "obs-fold", "missing-host", "http2-version", "nul-in-value"])
def test_malformed_requests_get_their_status_and_a_close(run, raw, status):
    async def main():
        async with serving(make_app()) as server:
            answer = await exchange(server.port, raw)
            assert status_of(answer) == status
            assert b"\r\nConnection: close\r\n" in answer.split(b"\r\n\r\n")[0] + b"\r\n"
            await still_serving(server.port)
    run(main)


def test_long_request_line_gets_414(run):
    async def main():
        async with serving(make_app(max_request_line_bytes=1024)) as server:
            answer = await exchange(server.port, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(answer) == 414
            await still_serving(server.port)
    run(main)


def test_too_many_or_too_large_headers_get_431(run):
    async def main():
        async with serving(make_app(max_header_count=10, max_head_bytes=4096, max_request_line_bytes=1024)) as server:
            many = b"".join(b"X-%d: v\r\n" % i for i in range(20))
            assert status_of(await exchange(server.port, b"GET /ok HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")) == 431
            big = b"X-Big: " + b"v" * 5000 + b"\r\n"
            assert status_of(await exchange(server.port, b"GET /ok HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")) == 431
            await still_serving(server.port)
    run(main)


def test_declared_body_over_the_limit_gets_413_before_any_body_byte(run):
    async def main():
        async with serving(make_app(max_body_bytes=1000)) as server:
            answer = await exchange(server.port, b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            assert status_of(answer) == 413
            await still_serving(server.port)
    run(main)


def test_chunked_body_over_the_limit_gets_413(run):
    async def main():
        async with serving(make_app(max_body_bytes=1000)) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            await client.send(b"400\r\n" + b"x" * 1024 + b"\r\n")
            reply = await client.response("POST")
            assert reply.status == 413 and reply.headers["connection"] == "close"
            assert await client.is_closed_by_peer()
            await client.close()
            await still_serving(server.port)
    run(main)


def test_malformed_chunk_size_in_streamed_body_gets_400(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            await asyncio.sleep(0.02)
            await client.send(b"zz\r\n")
            reply = await client.response("POST")
            assert reply.status == 400
            await client.close()
    run(main)


def test_handler_exception_answers_500_without_details(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/boom")
            assert reply.status == 500 and b"secret" not in reply.body
            assert (await client.request("GET", "/ok")).body == b"ok"  # same connection still fine
            teapot = await client.request("GET", "/teapot")
            assert teapot.status == 418 and teapot.body == b"short and stout\n"
            assert teapot.headers["x-why"] == "tea"
            await client.close()
    run(main)


def test_slowloris_head_deadline_answers_408(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            started = asyncio.get_running_loop().time()
            await client.send(b"GET /ok HTTP/1.1\r\n")
            for _ in range(12):  # a header byte every 0.1 s: never finishes within head_s=0.5
                await client.send(b"X")
                await asyncio.sleep(0.1)
                if client.reader.at_eof() or client.reader._buffer:  # noqa: SLF001 - answer arrived
                    break
            answer = await client.read_until_close()
            assert status_of(answer) == 408
            assert asyncio.get_running_loop().time() - started < 1.5
            await client.close()
            await still_serving(server.port)
    run(main)


def test_idle_connections_are_closed(run):
    async def main():
        async with serving(make_app()) as server:
            silent = await RawClient.open(server.port)
            assert await silent.is_closed_by_peer(timeout_s=2.0)  # first_request_s
            await silent.close()
            kept = await RawClient.open(server.port)
            assert (await kept.request("GET", "/ok")).status == 200
            assert await kept.is_closed_by_peer(timeout_s=2.0)  # keepalive_s
            await kept.close()
    run(main)


def test_stalled_body_answers_408(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            reply = await client.response("POST", timeout_s=3.0)
            assert reply.status == 408 and reply.headers["connection"] == "close"
            await client.close()
    run(main)


def test_expect_continue_is_sent_when_the_handler_reads(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 3)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            await client.send(b"data")
            raw = await asyncio.wait_for(client.reader.readuntil(b"}"), 3)
            assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(b'{"size":4}')
            await client.close()
    run(main)


def test_expect_continue_not_sent_when_the_handler_ignores_the_body(run):
    async def main():
        async with serving(make_app()) as server:
            answer = await exchange(
                server.port,
                b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200 OK") and b"100 Continue" not in answer
            assert b"Connection: close" in answer and answer.endswith(b"ignored")
    run(main)


def test_unread_small_body_is_drained_and_the_connection_kept(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
            first = await client.response("POST")
            assert first.status == 200 and "connection" not in first.headers
            await client.send(b"56789GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await client.response()).body == b"ok"
            await client.close()
    run(main)
