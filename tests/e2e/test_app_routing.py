"""Routing over real sockets: HEAD/OPTIONS/405, trailing slashes, parameters as keywords,
groups, included routers, class-based routes, sync handlers."""
from __future__ import annotations

import threading

from cyserve import App, Response, Router, route
from tests.support import RawClient, serving


def make_app(**options) -> App:
    app = App(**options)

    @app.get("/page")
    async def page(request):
        return Response(b"Hello, World!", content_type="text/plain")

    @app.post("/page")
    async def post_page(request):
        return "posted"

    @app.get("/items/{id:int}")
    async def item(request, id):
        return {"id": id, "same": request.path_params["id"] == id, "url": app.url_for("item", id=id)}

    @app.get("/dir/")
    async def directory(request):
        return "dir"

    @app.get("/names/{name}")
    async def name(request, name):
        return name

    @app.get("/sync")
    def sync(request):
        return {"on_loop_thread": threading.current_thread() is threading.main_thread()}

    return app


def test_head_is_answered_by_get_with_its_length_and_no_body(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("HEAD", "/page")
            assert reply.status == 200 and reply.body == b""
            assert reply.headers["content-length"] == "13"
            again = await client.request("GET", "/page")  # the connection is still in sync
            assert again.body == b"Hello, World!"
            await client.close()
    run(main)


def test_options_and_405_carry_allow(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            options = await client.request("OPTIONS", "/page")
            assert options.status == 204 and options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
            wrong = await client.request("DELETE", "/page")
            assert wrong.status == 405 and wrong.headers["allow"] == "GET, HEAD, OPTIONS, POST"
            star = await client.request("OPTIONS", "*")
            assert star.status == 204 and star.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
            await client.close()
    run(main)


def test_parameters_arrive_converted_as_keywords_and_mismatches_are_404(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/items/42")
            assert reply.body == b'{"id":42,"same":true,"url":"/items/42"}'
            assert (await client.request("GET", "/items/forty")).status == 404
            decoded = await client.request("GET", "/names/caf%C3%A9")
            assert decoded.body == "café".encode()
            await client.close()
    run(main)


def test_trailing_slash_redirects_308_keeping_the_query(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            strip = await client.request("GET", "/page/?a=1&b=2")
            assert strip.status == 308 and strip.headers["location"] == "/page?a=1&b=2"
            add = await client.request("POST", "/dir")
            assert add.status == 308 and add.headers["location"] == "/dir/"
            # "//evil.example" would be another host to a browser: no redirect, a plain 404.
            evil = await client.request("GET", "//evil.example/")
            assert evil.status == 404 and "location" not in evil.headers
            await client.close()
        async with serving(make_app(redirect_slashes=False)) as server:
            client = await RawClient.open(server.port)
            assert (await client.request("GET", "/page/")).status == 404
            await client.close()
    run(main)


def test_sync_handlers_run_off_the_loop_thread(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/sync")
            assert reply.body == b'{"on_loop_thread":false}'
            await client.close()
    run(main)


def tag(label):
    """A middleware that records its label in the X-Trace response header."""
    def middleware(handler):
        async def call(request):
            request.state.setdefault("trace", []).append(label)
            response = await handler(request)
            response.headers.append(("X-Trace", label))
            return response
        return call
    return middleware


def test_groups_and_included_routers_with_their_middleware(run):
    async def main():
        app = App()
        app.use(tag("global"))
        api = Router("/api", middlewares=[tag("api")])
        admin = api.group("/admin", middlewares=[tag("admin")])

        @admin.get("/stats", middlewares=[tag("route")])
        async def stats(request):
            return {"trace": request.state["trace"]}

        @api.get("/ping")
        async def ping(request):
            return {"trace": request.state["trace"]}

        app.include_router(api, prefix="/v1")
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/v1/api/admin/stats")
            assert reply.body == b'{"trace":["global","api","admin","route"]}'
            assert [v for k, v in reply.raw_headers if k == "X-Trace"] == ["route", "admin", "api", "global"]
            pong = await client.request("GET", "/v1/api/ping")
            assert pong.body == b'{"trace":["global","api"]}'
            await client.close()
    run(main)


def test_class_based_routes_marked_and_blazeio_named(run):
    async def main():
        calls = []

        class Service:
            def __init__(self):
                self.greeting = "hi"

            @route.get("/greet/{name}")
            async def greet(self, request, name):
                return f"{self.greeting} {name}"

            async def _api_ip(self, r):
                return {"ip": r.client[0], "method": r.method}

            async def before_middleware(self, r):
                calls.append(("before", r.path))

            async def after_middleware(self, r):
                calls.append(("after", r.path))

            async def handle_all_middleware(self, r):
                return Response(f"fallback for {r.path}", 200)

        app = App()
        app.attach(Service)
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            assert (await client.request("GET", "/greet/ann")).body == b"hi ann"
            ip = await client.request("POST", "/api/ip")
            assert ip.body == b'{"ip":"127.0.0.1","method":"POST"}'
            fallback = await client.request("GET", "/nothing/here")
            assert fallback.status == 200 and fallback.body == b"fallback for /nothing/here"
            await client.close()
        assert calls[:2] == [("before", "/greet/ann"), ("after", "/greet/ann")]
        assert ("after", "/nothing/here") in calls
    run(main)
