"""docs/migrating.md, the PyLiteFlux table: one test per row, over real sockets."""
from __future__ import annotations

import asyncio
import threading

import pytest

from cyserve import App, BaseMiddleware, JSONResponse, Response, Router, StreamResponse, g
from tests.support import fetch, serving


def test_route_register_keeps_its_decorators_on_a_router(run):
    async def main():
        Route = Router()  # PyLiteFlux: from pyliteflux import Route

        @Route.register("/hello", method="GET")
        def hello(request):  # sync handlers run in the thread pool
            return Response("hi")

        @Route.register("/hello", method="PATCH")  # PyLiteFlux raised KeyError for PATCH
        def patch(request):
            return Response("patched")

        with pytest.raises(ValueError):
            Route.register("ping", protocol="tcp")
        app = App()
        app.include_router(Route)
        async with serving(app) as server:
            assert (await fetch(server.port, "GET", "/hello")).body == b"hi"
            assert (await fetch(server.port, "PATCH", "/hello", body=b"x")).body == b"patched"
            refused = await fetch(server.port, "POST", "/hello", body=b"x")  # PyLiteFlux: 404
            assert refused.status == 405 and refused.headers["allow"] == "GET, HEAD, OPTIONS, PATCH"
    run(main)


def test_integer_path_parameters_are_declared(run):
    # PyLiteFlux matched {id} against digits only and passed an int.
    async def main():
        app = App()

        @app.get("/items/{item_id}")
        async def item(request, item_id: int):
            return {"id": item_id, "type": type(item_id).__name__}

        @app.get("/users/{user_id:int}")
        async def user(request):
            return {"id": request.path_params["user_id"]}

        async with serving(app) as server:
            assert (await fetch(server.port, "GET", "/items/42")).body == b'{"id":42,"type":"int"}'
            assert (await fetch(server.port, "GET", "/items/abc")).status == 404
            assert (await fetch(server.port, "GET", "/users/7")).body == b'{"id":7}'
    run(main)


def test_bg_add_runs_after_the_response(run):
    async def main():
        app = App()
        release = threading.Event()
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        log = []

        def send_mail(to, subject="none"):  # waits until the client has its response
            assert release.wait(5)
            log.append((to, subject))
            loop.call_soon_threadsafe(finished.set)

        @app.post("/order")
        def order(request):
            request.bg.add(send_mail, "bob", subject="thanks")
            return Response("queued", 202)

        async with serving(app) as server:
            reply = await fetch(server.port, "POST", "/order", body=b"{}")
            assert (reply.status, reply.body, log) == (202, b"queued", [])
            release.set()
            await asyncio.wait_for(finished.wait(), 3)
        assert log == [("bob", "thanks")]
    run(main)


def test_g_belongs_to_one_request(run):
    # PyLiteFlux's g was one object for the whole process, never cleared.
    async def main():
        app = App()

        @app.get("/as/{name}")
        async def who(request, name: str):
            assert "user" not in g  # nothing left over from an earlier request
            g.user = name
            await asyncio.sleep(0.05)  # the other request runs meanwhile
            return {"user": g.user}

        async with serving(app) as server:
            replies = await asyncio.gather(*(fetch(server.port, "GET", f"/as/{n}") for n in "abc"))
            assert [r.body for r in replies] == [b'{"user":"a"}', b'{"user":"b"}', b'{"user":"c"}']
    run(main)


def test_responses_keep_their_argument_order(run):
    async def main():
        app = App()

        @app.get("/text")
        def text(request):  # HTTPResponse(data, status, headers)
            return Response("made", 201, {"X-A": "1"})

        @app.get("/dict")
        def as_dict(request):  # PyLiteFlux sent the repr
            return {"message": "hi"}

        @app.get("/json")
        def as_json(request):  # HTTPJSONResponse(data, status, headers)
            return JSONResponse([1, 2], 202)

        @app.get("/stream")
        def stream(request):  # HTTPStreamResponse(iterator): chunked over HTTP/1.0 there
            return StreamResponse(iter([b"a", b"b", b"c"]), 200, {"X-S": "1"})

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/text")
            assert (reply.status, reply.body, reply.headers["x-a"]) == (201, b"made", "1")
            assert (await fetch(server.port, "GET", "/dict")).body == b'{"message":"hi"}'
            assert (await fetch(server.port, "GET", "/json")).status == 202
            streamed = await fetch(server.port, "GET", "/stream")
            assert streamed.headers["transfer-encoding"] == "chunked" and streamed.body == b"abc"
    run(main)


def test_middleware_class_keeps_process_request_and_process_response(run):
    async def main():
        app = App()

        class Auth(BaseMiddleware):
            def process_request(self, request):
                if request.headers.get("authorization") is None:
                    return Response("login first", 401)
                return None

            def process_response(self, request, response):
                response.headers.append(("X-Checked", "1"))
                return response

        app.use(Auth())  # server.add_middleware(Auth())

        @app.get("/secret")
        def secret(request):
            return "s3cret"

        async with serving(app) as server:
            assert (await fetch(server.port, "GET", "/secret")).status == 401
            allowed = await fetch(server.port, "GET", "/secret", [("Authorization", "x")])
            assert (allowed.body, allowed.headers["x-checked"]) == (b"s3cret", "1")
    run(main)


def test_request_data_accessors(run):
    async def main():
        app = App()

        @app.post("/data")
        async def data(request):
            return {"first": request.query.getlist("a")[0], "last": request.query.get("a"),
                    "json": await request.json()}

        @app.post("/form")
        async def form(request):
            return dict((await request.form()).items())

        async with serving(app) as server:
            reply = await fetch(server.port, "POST", "/data?a=1&a=2",
                                [("Content-Type", "application/json; charset=utf-8")], b'{"k":1}')
            assert reply.body == b'{"first":"1","last":"2","json":{"k":1}}'
            bad = await fetch(server.port, "POST", "/data?a=1", [("Content-Type", "application/json")], b"{")
            assert bad.status == 400  # PyLiteFlux: 500
            posted = await fetch(server.port, "POST", "/form",
                                 [("Content-Type", "application/x-www-form-urlencoded")], b"x=1&y=two")
            assert posted.body == b'{"x":"1","y":"two"}'
    run(main)


def test_handler_errors_do_not_leak_their_message(run):
    async def main():
        app = App()

        @app.get("/boom")
        def boom(request):
            raise KeyError("db password is hunter2")

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/boom")
            assert reply.status == 500 and b"hunter2" not in reply.body
    run(main)
