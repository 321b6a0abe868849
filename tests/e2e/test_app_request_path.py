"""One request path, over real sockets: every kind of handler result and error gets the same answer
whether the App has no middleware (the endpoint is the whole chain), middleware on the routes
only, or global middleware; middleware always sees responses; background calls run after a
successful response and never after an error, in every shape."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cyserve import App, HTTPError, JSONResponse, Response, StreamResponse
from cyserve.response import BaseResponse
from tests.support import RawClient, serving

SHAPES = ["bare", "route-middleware", "global-middleware"]


def make_app(shape: str, seen: list[Any], ran: list[str]) -> App:
    app = App()

    def checking(handler: Any) -> Any:
        async def call(request: Any) -> BaseResponse:
            response = await handler(request)
            assert isinstance(response, BaseResponse), response  # never a raw result
            seen.append(response.status)
            return response
        return call

    if shape == "global-middleware":
        app.use(checking)
    routes = app.group("", [checking]) if shape == "route-middleware" else app

    @app.exception_handler(ValueError)
    async def on_value(request, exc):
        return {"mapped": str(exc)}, 422

    @routes.get("/dict")
    async def a_dict(request):
        return {"a": 1}

    @routes.get("/list")
    async def a_list(request):
        return [1, 2]

    @routes.get("/str")
    async def a_str(request):
        return "text"

    @routes.get("/bytes")
    async def a_bytes(request):
        return b"\x00raw"

    @routes.get("/none")
    async def a_none(request):
        return None

    @routes.get("/tuple")
    async def a_tuple(request):
        return "made", 201, {"X-A": "1"}

    @routes.get("/subclass")
    async def a_subclass(request):
        return JSONResponse({"b": 2}, 202)

    @routes.get("/response")
    async def a_response(request):
        return Response(b"plain", 203, [("X-B", "2")], "text/x-custom")

    @routes.route("/stream", ("GET", "HEAD"))
    async def a_stream(request):
        async def chunks():
            ran.append("producer")
            yield b"one,"
            yield "two"
        return StreamResponse(chunks(), content_type="text/csv")

    @routes.get("/http-error")
    async def http_error(request):
        raise HTTPError(409, "taken", {"X-C": "3"})

    @routes.get("/mapped")
    async def mapped(request):
        raise ValueError("bad input")

    @routes.get("/crash")
    async def crash(request):
        raise RuntimeError("bug")

    @routes.get("/not-a-response")
    async def not_a_response(request):
        return object()

    @routes.get("/background")
    async def background(request):
        request.background(ran.append, "after ok")
        return "queued"

    @routes.get("/background-then-error")
    async def background_then_error(request):
        request.background(ran.append, "after error")
        raise HTTPError(400, "changed my mind")

    @routes.get("/background-then-crash")
    async def background_then_crash(request):
        request.background(ran.append, "after crash")
        raise RuntimeError("bug")

    return app


# path -> (status, content type, body, a header that must be there or None)
EXPECTED = {
    "/dict": (200, "application/json", b'{"a":1}', None),
    "/list": (200, "application/json", b"[1,2]", None),
    "/str": (200, "text/plain; charset=utf-8", b"text", None),
    "/bytes": (200, "application/octet-stream", b"\x00raw", None),
    "/none": (204, None, b"", None),
    "/tuple": (201, "text/plain; charset=utf-8", b"made", ("x-a", "1")),
    "/subclass": (202, "application/json", b'{"b":2}', None),
    "/response": (203, "text/x-custom", b"plain", ("x-b", "2")),
    "/stream": (200, "text/csv", b"one,two", ("transfer-encoding", "chunked")),
    "/http-error": (409, "text/plain; charset=utf-8", b"taken\n", ("x-c", "3")),
    "/mapped": (422, "application/json", b'{"mapped":"bad input"}', None),
    "/crash": (500, "text/plain; charset=utf-8", b"Internal Server Error\n", None),
    "/not-a-response": (500, "text/plain; charset=utf-8", b"Internal Server Error\n", None),
    "/missing": (404, "text/plain; charset=utf-8", b"Not Found\n", None),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_result_and_error_gets_the_same_answer_in_every_shape(run, shape, caplog):
    seen: list[Any] = []
    ran: list[str] = []

    async def main():
        async with serving(make_app(shape, seen, ran)) as server:
            client = await RawClient.open(server.port)
            for path, (status, content_type, body, header) in EXPECTED.items():
                reply = await client.request("GET", path)
                assert reply.status == status, (path, reply)
                assert reply.headers.get("content-type") == content_type, (path, reply.headers)
                assert reply.body == body, (path, reply.body)
                if header is not None:
                    assert reply.headers.get(header[0]) == header[1], (path, reply.headers)
            wrong_method = await client.request("POST", "/dict")
            assert wrong_method.status == 405 and wrong_method.headers["allow"] == "GET, HEAD, OPTIONS"
            await client.close()

    run(main)
    if shape == "bare":
        assert seen == []
    else:
        # Every result and error reaches the middleware as a response, 500s included.
        routed_statuses = [s for p, (s, *_) in EXPECTED.items() if p != "/missing"]
        unmatched = [404, 405] if shape == "global-middleware" else []  # route middleware: routed only
        assert seen == routed_statuses + unmatched


@pytest.mark.parametrize("shape", SHAPES)
def test_head_of_a_stream_sends_the_head_and_never_runs_the_producer(run, shape):
    ran: list[str] = []

    async def main():
        async with serving(make_app(shape, [], ran)) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("HEAD", "/stream")
            assert reply.status == 200 and reply.headers["content-type"] == "text/csv" and reply.body == b""
            assert (await client.request("GET", "/stream")).body == b"one,two"  # framing intact
            await client.close()

    run(main)
    assert ran == ["producer"]  # the GET's only


@pytest.mark.parametrize("shape", SHAPES)
def test_background_calls_run_after_success_and_never_after_an_error(run, shape, caplog):
    ran: list[str] = []

    async def main():
        async with serving(make_app(shape, [], ran)) as server:
            client = await RawClient.open(server.port)
            assert (await client.request("GET", "/background-then-error")).status == 400
            assert (await client.request("GET", "/background-then-crash")).status == 500
            assert (await client.request("GET", "/background")).body == b"queued"
            for _ in range(100):
                if ran:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # room for a wrongly queued call to show up too
            await client.close()

    run(main)
    assert ran == ["after ok"]
