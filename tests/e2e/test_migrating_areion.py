"""docs/migrating.md, the Areion table: one test per row, over real sockets."""
from __future__ import annotations

import asyncio
import threading

import pytest

from cyserve import App
from cyserve.compat import (
    BadRequestError,
    ForbiddenError,
    HttpError,
    InternalServerError,
    MethodNotAllowedError,
    NotFoundError,
    UnauthorizedError,
    create_empty_response,
    create_error_response,
    create_file_response,
    create_json_response,
    create_redirect_response,
    create_text_response,
)
from tests.support import fetch, serving


def test_create_response_helpers_take_areion_arguments(run):
    async def main():
        app = App()

        @app.get("/json")
        async def as_json(request):
            return create_json_response({"id": 1}, status_code=201)

        @app.get("/text")
        async def as_text(request):
            return create_text_response("plain", 202, {"X-A": "1"})

        @app.get("/away")
        async def away(request):
            return create_redirect_response("/text")

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/json")
            assert (reply.status, reply.body) == (201, b'{"id":1}')
            text = await fetch(server.port, "GET", "/text")
            assert (text.status, text.headers["x-a"], text.body) == (202, "1", b"plain")
            away_reply = await fetch(server.port, "GET", "/away")
            assert (away_reply.status, away_reply.headers["location"]) == (301, "/text")
        with pytest.raises(ValueError):  # Areion wrote it into the head unchecked
            create_redirect_response("/x\r\nSet-Cookie: a=1")
    run(main)


def test_create_empty_response(run):
    async def main():
        app = App()

        @app.delete("/thing")
        async def remove(request):
            return create_empty_response(headers={"X-Deleted": "1"})

        async with serving(app) as server:
            reply = await fetch(server.port, "DELETE", "/thing")
            assert (reply.status, reply.body, reply.headers["x-deleted"]) == (204, b"", "1")
            assert "content-type" not in reply.headers and "content-length" not in reply.headers
    run(main)


def test_create_error_response(run):
    async def main():
        app = App()

        @app.get("/teapot")
        async def teapot(request):
            return create_error_response(418, "short and stout")

        @app.get("/phrase")
        async def phrase(request):
            return create_error_response(503)

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/teapot")
            assert (reply.status, reply.body) == (418, b"short and stout")
            assert reply.headers["content-type"] == "text/plain; charset=utf-8"
            assert (await fetch(server.port, "GET", "/phrase")).body == b"Service Unavailable"
    run(main)


def test_create_file_response_streams_an_attachment(run, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"line\n" * 30000)

    async def main():
        app = App()

        @app.get("/notes")
        async def download(request):
            return create_file_response(notes)

        @app.get("/missing")
        async def missing(request):
            return create_file_response(tmp_path / "nope.txt")

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/notes")
            assert reply.status == 200 and reply.body == notes.read_bytes()
            assert reply.headers["content-disposition"] == 'attachment; filename="notes.txt"'
            assert reply.headers["content-type"].startswith("text/plain")
            assert "etag" in reply.headers and "last-modified" in reply.headers
            assert (await fetch(server.port, "GET", "/missing")).status == 404
    run(main)


def test_error_classes_are_answered_with_their_status_and_caught_as_http_error(run):
    async def main():
        app = App()
        raised = {"400": BadRequestError("bad input"), "401": UnauthorizedError(),
                  "403": ForbiddenError(), "404": NotFoundError("no user 7"),
                  "405": MethodNotAllowedError(headers={"Allow": "GET"}),
                  "409": HttpError("taken", 409), "500": InternalServerError()}

        @app.get("/raise/{code}")
        async def fail(request, code: str):
            raise raised[code]

        @app.get("/caught")
        async def caught(request):
            try:
                raise ForbiddenError("nope")
            except HttpError as exc:
                return {"status": exc.status_code, "message": exc.message}

        async with serving(app) as server:
            for code, error in raised.items():
                reply = await fetch(server.port, "GET", f"/raise/{code}")
                assert reply.status == int(code) == error.status_code
                assert reply.body == error.message.encode() + b"\n"
            assert (await fetch(server.port, "GET", "/raise/405")).headers["allow"] == "GET"
            assert (await fetch(server.port, "GET", "/caught")).body == b'{"status":403,"message":"nope"}'
    run(main)


def test_cron_dict_schedules_on_the_loop_with_its_arguments(run):
    async def main():
        app = App()
        loop = asyncio.get_running_loop()
        ran = asyncio.Event()
        calls = []

        def tick(label, *, times):  # sync: runs in the thread pool, not on the loop
            calls.append((label, times, threading.current_thread() is not threading.main_thread()))
            loop.call_soon_threadsafe(ran.set)

        job = app.schedule({"second": "*"}, tick, "a", times=2)
        app.schedule({"second": "*"}, tick, "b", times=1)  # the same function twice is fine
        assert job.cron == "* * * * * *"
        async with serving(app):
            await asyncio.wait_for(ran.wait(), 3)
        assert calls and set(calls) <= {("a", 2, True), ("b", 1, True)}
    run(main)


def layer(label):
    def middleware(handler):
        async def call(request):
            response = await handler(request)
            response.headers.append(("X-Layer", label))
            return response
        return call
    return middleware


def test_route_parameters_groups_and_middleware(run):
    async def main():
        app = App()
        api = app.group("/api", [layer("group")])  # reachable at once: no include_router needed

        @api.get("/users/{user_id}")  # Areion: "/users/:user_id"
        async def user(request, user_id: int):
            return {"id": user_id}

        @app.get("/a/b/c")
        async def static(request):
            return "static"

        @app.get("/a/{x}/d")  # Areion found no route for /a/b/d: it did not backtrack
        async def dynamic(request, x: str):
            return f"dynamic {x}"

        app.use(layer("global"))  # Areion: only routes added after it were wrapped
        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/api/users/7")
            assert reply.body == b'{"id":7}'
            assert [v for k, v in reply.raw_headers if k == "X-Layer"] == ["group", "global"]
            assert (await fetch(server.port, "GET", "/a/b/d")).body == b"dynamic b"
            assert (await fetch(server.port, "GET", "/a/b/c")).body == b"static"
    run(main)


def test_headers_are_case_insensitive(run):
    async def main():
        app = App()

        @app.get("/token")
        async def token(request):  # Areion: request.get_header("X-Token"), exact case only
            return {"token": request.headers.get("X-Token"), "same": request.headers["x-TOKEN"]}

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/token", [("x-token", "t")])
            assert reply.body == b'{"token":"t","same":"t"}'
    run(main)


def test_metadata_is_state_and_submit_task_is_background(run):
    async def main():
        app = App()
        done = asyncio.Event()
        results = []

        def work(x, y):
            results.append(x + y)

        async def finished():
            done.set()

        @app.before
        def tag(request):
            request.state["tenant"] = "acme"  # Areion: request.add_metadata("tenant", "acme")

        @app.get("/job")
        async def job(request):
            request.background(work, 2, 3)  # Areion: request.submit_task(work, 2, 3)
            request.background(finished)
            return {"tenant": request.state.get("tenant")}

        async with serving(app) as server:
            assert (await fetch(server.port, "GET", "/job")).body == b'{"tenant":"acme"}'
            await asyncio.wait_for(done.wait(), 3)
        assert results == [5]
    run(main)
