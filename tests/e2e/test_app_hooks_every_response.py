"""Every response passes back out through every layer that saw the request, over real sockets.

``after`` hooks run for every response the App makes (early returns and errors of ``before``
hooks, 404, 405, 500, errors of group and route middleware), whatever the registration order;
an error raised by any layer is a response to the layers outside it, so global middleware
(CORS, security headers) adds its headers to error pages.  The hook order is by kind: ``after``
hooks outside ``app.use`` middleware outside ``before`` hooks (cyserve/app.py's docstring).
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

from cyserve import (Abort, App, BaseMiddleware, Conflict, Forbidden, HTTPError, Limits, Response,
                     SecurityHeaders, Unauthorized)
from cyserve.testing import TestClient
from tests.support import RawClient, serving

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "areion_api.py"


def raising(exc: Exception) -> Any:
    """A middleware that raises ``exc`` before its handler runs."""
    def middleware(handler: Any) -> Any:
        async def call(request: Any) -> Any:
            raise exc
        return call
    return middleware


def make_app(after_saw: list[tuple[str, str, int, bool]]) -> App:
    app = App()

    @app.before
    async def gate(request):
        if request.path == "/early":
            return "answered early", 418
        if request.path == "/denied":
            raise Forbidden("no entry")
        if request.path == "/before-crash":
            raise RuntimeError("bug in a before hook")
        return None

    # Registered after the before hook: inside it, were the order by registration.
    @app.after
    def record(request, response):
        after_saw.append((request.method, request.path, response.status,
                          field(response, "x-content-type-options") == "nosniff"))

    app.use(SecurityHeaders())  # registered last of all: still outside the before hook

    @app.get("/ok")
    async def ok(request):
        return "ok"

    @app.get("/crash")
    async def crash(request):
        raise RuntimeError("bug in a handler")

    group = app.group("/group", [raising(Unauthorized("group says no"))])

    @group.get("/inside")
    async def inside(request):
        return "never"

    @app.get("/route-mw", middlewares=[raising(Conflict("route middleware says no"))])
    async def route_mw(request):
        return "never"

    @app.get("/route-mw-crash", middlewares=[raising(RuntimeError("bug in a route middleware"))])
    async def route_mw_crash(request):
        return "never"

    return app


def field(response: Any, name: str) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value
    return None


# (method, path) -> status the client gets and the after hook sees
EVERY_KIND = {
    ("GET", "/ok"): 200,
    ("GET", "/early"): 418,             # a before hook's early return
    ("GET", "/denied"): 403,            # a before hook's HTTPError
    ("GET", "/before-crash"): 500,      # a before hook's crash
    ("GET", "/missing"): 404,
    ("DELETE", "/ok"): 405,
    ("GET", "/crash"): 500,             # the handler's crash
    ("GET", "/group/inside"): 401,      # a group middleware's HTTPError
    ("GET", "/route-mw"): 409,          # a route middleware's HTTPError
    ("GET", "/route-mw-crash"): 500,    # a route middleware's crash
}


def test_after_hooks_and_global_middleware_see_every_response_the_app_makes(run, caplog):
    after_saw: list[tuple[str, str, int, bool]] = []

    async def main():
        async with serving(make_app(after_saw)) as server:
            client = await RawClient.open(server.port)
            for (method, path), status in EVERY_KIND.items():
                reply = await client.request(method, path)
                assert reply.status == status, (path, reply)
                # The global middleware wrapped it, error pages and 500s included.
                assert reply.headers.get("x-content-type-options") == "nosniff", (path, reply.headers)
                assert reply.headers.get("x-frame-options") == "DENY", (path, reply.headers)
            await client.close()

    run(main)
    # Every one reached the hook, in order, as the response the client got (security headers on).
    assert after_saw == [(method, path, status, True) for (method, path), status in EVERY_KIND.items()]
    crashes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("unhandled error")]
    assert len(crashes) == 3  # each 500 logged once, where it was mapped


def test_hooks_run_by_kind_whatever_the_registration_order(run):
    log: list[str] = []

    def middleware(label: str) -> Any:
        def wrap(handler: Any) -> Any:
            async def call(request: Any) -> Any:
                log.append(f"{label} in")
                response = await handler(request)
                log.append(f"{label} out {response.status}")
                return response
            return call
        return wrap

    async def main():
        app = App()
        app.after(lambda request, response: log.append(f"after A {response.status}"))
        app.before(lambda request: log.append("before 1"))
        app.use(middleware("M1"))
        app.after(lambda request, response: log.append(f"after B {response.status}"))

        @app.before
        def before_two(request):
            log.append("before 2")
            return ("stopped", 401) if request.path == "/stop" else None

        app.use(middleware("M2"))

        @app.get("/go")
        async def go(request):
            log.append("handler")
            return "went"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            assert (await client.request("GET", "/go")).body == b"went"
            log.append("--")
            assert (await client.request("GET", "/stop")).status == 401
            await client.close()

    run(main)
    assert log == [
        "M1 in", "M2 in", "before 1", "before 2", "handler", "M2 out 200", "M1 out 200",
        "after A 200", "after B 200",
        "--",
        "M1 in", "M2 in", "before 1", "before 2", "M2 out 401", "M1 out 401",
        "after A 401", "after B 401",
    ]


def test_an_after_hook_that_fails_is_the_response_the_later_hooks_and_the_client_see(run, caplog):
    seen: list[int] = []

    async def main():
        app = App()

        @app.after
        def first(request, response):
            if request.path == "/teapot":
                raise HTTPError(418, "short and stout")
            raise RuntimeError("bug in an after hook")

        @app.after
        def second(request, response):
            seen.append(response.status)

        @app.get("/{name}")
        async def anything(request, name):
            return name

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            assert (await client.request("GET", "/teapot")).status == 418
            assert (await client.request("GET", "/other")).status == 500
            await client.close()

    run(main)
    assert seen == [418, 500]


def test_an_error_inside_reaches_process_response_and_outer_middleware_as_a_response(run, caplog):
    outer: list[int] = []

    class Audit(BaseMiddleware):
        def process_response(self, request, response):
            outer.append(response.status)
            response.headers.append(("X-Audited", "yes"))

    async def main():
        app = App()
        app.use(Audit())
        app.use(raising(RuntimeError("bug in a global middleware")))

        @app.get("/x")
        async def x(request):
            return "never"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/x")
            assert reply.status == 500 and reply.headers["x-audited"] == "yes"
            await client.close()

    run(main)
    assert outer == [500]


def test_work_queued_by_a_handler_does_not_run_when_a_middleware_then_fails(run):
    ran: list[str] = []

    def fail_after(handler: Any) -> Any:
        async def call(request: Any) -> Any:
            await handler(request)
            raise Conflict("changed my mind")
        return call

    async def main():
        app = App()
        app.use(SecurityHeaders())

        @app.get("/queue", middlewares=[fail_after])
        async def queue(request):
            request.background(ran.append, "queued")
            return "ok"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/queue")
            assert reply.status == 409 and reply.headers["x-frame-options"] == "DENY"
            await asyncio.sleep(0.05)  # room for a wrongly queued call to show up
            await client.close()

    run(main)
    assert ran == []


def test_after_hooks_get_none_when_the_core_answers_a_protocol_error(run):
    seen: list[Any] = []

    async def main():
        app = App(limits=Limits(max_body_bytes=16))
        reading = asyncio.Event()

        @app.after
        def record(request, response):
            seen.append(response)

        @app.post("/upload")
        async def upload(request):
            reading.set()
            return await request.body()

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            # Chunked, and sent once the handler runs: the limit is found while it reads.
            await client.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            await reading.wait()
            await client.send(b"20\r\n" + b"x" * 32 + b"\r\n0\r\n\r\n")
            reply = await client.response("POST")
            assert reply.status == 413  # the core's answer, not a 500 made of its ProtocolError
            await client.close()

    run(main)
    assert seen == [None]


class BlazeioStyle:
    """Blazeio's class shape: ``attach()`` registers ``before_middleware`` before ``after_middleware``."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, int | None]] = []

    async def before_middleware(self, r):
        if r.headers.get("authorization") != "Bearer ok":
            raise Abort("login first", 401)

    async def after_middleware(self, r):
        self.finished.append((r.path, r.state.get("user")))

    async def _api_me(self, r):
        r.state["user"] = 7
        return {"me": 7}


def test_blazeio_after_middleware_runs_when_before_middleware_aborts():
    app = App()
    api = app.attach(BlazeioStyle)
    with TestClient(app) as client:
        refused = client.get("/api/me")
        assert refused.status_code == 401 and refused.text() == "login first\n"
        allowed = client.get("/api/me", headers={"Authorization": "Bearer ok"})
        assert allowed.status_code == 200 and allowed.json() == {"me": 7}
        assert client.get("/api/none", headers={"Authorization": "Bearer ok"}).status_code == 404
    assert api.finished == [("/api/me", None), ("/api/me", 7), ("/api/none", None)]


def load_areion_app() -> App:
    spec = importlib.util.spec_from_file_location("areion_api_hooks", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def test_areion_example_admin_401_carries_the_global_cors_and_security_headers(run):
    app = load_areion_app()
    origin = [("Origin", "http://localhost:3000"), ("Accept", "application/json")]

    async def main():
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            refused = await client.request("POST", "/api/v1/admin/users", origin, b'{"name": "cy"}')
            assert refused.status == 401 and json.loads(refused.body)["status"] == 401
            headers = refused.headers
            assert headers["www-authenticate"] == "Bearer"
            # A browser app can read the 401 (not a CORS failure), with the usual headers on it.
            assert headers["access-control-allow-origin"] == "http://localhost:3000"
            assert headers["vary"] == "Origin"
            assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
            assert "x-request-id" in headers and "server-timing" in headers  # global and group layers
            await client.close()

    run(main)
