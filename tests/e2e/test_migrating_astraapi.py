"""docs/migrating.md, the AstraAPI (FastAPI names) table: one test per row, over real sockets."""
from __future__ import annotations

import asyncio

import pytest

from cyserve import App, HTTPError, JSONResponse, Response
from cyserve.compat import http_middleware
from tests.support import fetch, serving


def test_app_head_is_a_route_of_its_own_and_get_answers_head_without_one(run):
    async def main():
        app = App()

        @app.head("/probe")
        async def probe(request):
            return Response(b"", 200, {"X-Probe": "1"})

        @app.get("/page")
        async def page(request):
            return "twelve bytes"

        async with serving(app) as server:
            reply = await fetch(server.port, "HEAD", "/probe")
            assert (reply.status, reply.headers["x-probe"], reply.body) == (200, "1", b"")
            refused = await fetch(server.port, "GET", "/probe")
            assert refused.status == 405 and refused.headers["allow"] == "HEAD, OPTIONS"
            head = await fetch(server.port, "HEAD", "/page")  # AstraAPI needed @app.head here
            assert (head.headers["content-length"], head.body) == ("12", b"")
    run(main)


def test_app_options_replaces_the_automatic_answer(run):
    async def main():
        app = App()

        @app.options("/custom")
        async def custom(request):
            return Response(b"", 200, {"X-Options": "mine"})

        @app.get("/plain")
        async def plain(request):
            return "x"

        async with serving(app) as server:
            reply = await fetch(server.port, "OPTIONS", "/custom")
            assert (reply.status, reply.headers["x-options"]) == (200, "mine")
            automatic = await fetch(server.port, "OPTIONS", "/plain")
            assert (automatic.status, automatic.headers["allow"]) == (204, "GET, HEAD, OPTIONS")
    run(main)


def test_api_route_serves_its_methods_and_405_names_them(run):
    async def main():
        app = App()

        @app.api_route("/both", methods=["GET", "POST"])
        async def both(request):
            return {"method": request.method}

        async with serving(app) as server:
            assert (await fetch(server.port, "POST", "/both", body=b"x")).body == b'{"method":"POST"}'
            refused = await fetch(server.port, "PUT", "/both", body=b"x")
            assert refused.status == 405 and refused.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    run(main)


def test_app_middleware_http_wraps_every_request(run):
    async def main():
        app = App()

        @app.middleware("http")
        async def timing(request, call_next):
            response = await call_next(request)
            response.headers.append(("X-Seen", request.path))
            return response

        @app.get("/fail")
        async def fail(request):
            raise RuntimeError("boom")

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/fail")
            assert (reply.status, reply.headers["x-seen"]) == (500, "/fail")
            missing = await fetch(server.port, "GET", "/missing")
            assert (missing.status, missing.headers["x-seen"]) == (404, "/missing")
        with pytest.raises(ValueError):
            app.middleware("websocket")
    run(main)


def test_http_middleware_works_without_the_decorator(run):
    async def main():
        app = App()

        async def stamp(request, call_next):
            if request.headers.get("x-stop"):
                return JSONResponse({"stopped": True}, 429)
            response = await call_next(request)
            response.headers.append(("X-Stamp", "1"))
            return response

        app.use(http_middleware(stamp))

        @app.get("/")
        async def home(request):
            return "home"

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/")
            assert (reply.body, reply.headers["x-stamp"]) == (b"home", "1")
            stopped = await fetch(server.port, "GET", "/", [("X-Stop", "1")])
            assert (stopped.status, stopped.body) == (429, b'{"stopped":true}')
    run(main)


def test_request_state_takes_attributes(run):
    async def main():
        app = App()

        async def authenticate(request, call_next):
            request.state.user = "ada"
            return await call_next(request)

        app.use(http_middleware(authenticate))

        @app.get("/me")
        async def me(request):
            return {"user": request.state.user, "same": request.state["user"] == request.state.user}

        async with serving(app) as server:
            assert (await fetch(server.port, "GET", "/me")).body == b'{"user":"ada","same":true}'
    run(main)


def test_http_exception_is_http_error_with_the_same_arguments(run):
    async def main():
        app = App()

        @app.get("/items/{item_id}")
        async def item(request, item_id: int):
            raise HTTPError(404, f"item {item_id} not found", {"X-Error": "missing"})

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/items/3", [("Accept", "application/json")])
            assert reply.status == 404 and reply.headers["x-error"] == "missing"
            assert reply.body == b'{"detail":"item 3 not found","status":404}'
            text = await fetch(server.port, "GET", "/items/3")
            assert text.body == b"item 3 not found\n"
    run(main)


def test_background_tasks_are_request_background(run):
    async def main():
        app = App()
        done = asyncio.Event()
        sent = []

        async def notify(address, *, subject):
            sent.append((address, subject))
            done.set()

        @app.post("/signup", status_code=201)
        async def signup(request):
            request.background(notify, "a@example.com", subject="hi")  # bg.add_task(...)
            return {"ok": True}

        async with serving(app) as server:
            reply = await fetch(server.port, "POST", "/signup", body=b"{}")
            assert (reply.status, reply.body) == (201, b'{"ok":true}')
            await asyncio.wait_for(done.wait(), 3)
        assert sent == [("a@example.com", "hi")]
    run(main)


def test_json_response_takes_the_status_second(run):
    async def main():
        app = App()

        @app.get("/made")
        async def made(request):
            return JSONResponse({"id": 1}, 201, {"X-A": "1"})  # JSONResponse(content, status_code=201)

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/made")
            assert (reply.status, reply.body, reply.headers["x-a"]) == (201, b'{"id":1}', "1")
    run(main)
