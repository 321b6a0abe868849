"""Middleware over real sockets: where each kind applies, and the built-ins on the wire."""
from __future__ import annotations

import re

from cyserve import CORS, App, Forbidden, RequestID, Response, SecurityHeaders, TrustedHosts
from tests.support import RawClient, serving


def test_global_middleware_sees_unmatched_requests_and_errors_as_responses(run):
    async def main():
        app = App()

        @app.get("/ok")
        async def ok(request):
            return "ok"

        @app.get("/forbidden")
        async def forbidden(request):
            raise Forbidden("no")

        statuses = []

        @app.after
        async def record(request, response):
            statuses.append(response.status)

        app.use(SecurityHeaders())  # added after the routes: still applies to them
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            for path in ("/ok", "/missing", "/forbidden"):
                reply = await client.request("GET", path)
                assert reply.headers["x-content-type-options"] == "nosniff", path
            assert (await client.request("PUT", "/ok")).headers["x-frame-options"] == "DENY"
            await client.close()
        assert statuses == [200, 404, 403, 405]
    run(main)


def test_a_middleware_may_raise_http_errors_and_before_hooks_short_circuit(run):
    async def main():
        app = App()

        @app.get("/private")
        async def private(request):
            return "secret"

        @app.before
        def require_token(request):
            if request.headers.get("x-token") != "t":
                raise Forbidden("token required")

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            refused = await client.request("GET", "/private")
            assert refused.status == 403 and refused.body == b"token required\n"
            allowed = await client.request("GET", "/private", [("X-Token", "t")])
            assert allowed.body == b"secret"
            await client.close()
    run(main)


def make_cors_app(**options) -> App:
    app = App()
    app.use(CORS(**options))

    @app.get("/data")
    async def data(request):
        return {"ok": True}

    @app.post("/data")
    async def post_data(request):
        return {"posted": True}

    return app


def test_cors_preflight_and_simple_requests_with_credentials(run):
    async def main():
        app = make_cors_app(allow_origins=["https://app.example"], allow_methods=["GET", "POST"],
                            allow_headers=["X-Token"], expose_headers=["X-Total"], allow_credentials=True,
                            max_age_s=300)
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            pre = await client.request("OPTIONS", "/data", [
                ("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "x-token, content-type")])
            assert pre.status == 204
            assert pre.headers["access-control-allow-origin"] == "https://app.example"
            assert pre.headers["access-control-allow-credentials"] == "true"
            assert pre.headers["access-control-allow-methods"] == "GET, POST"
            assert "x-token" in pre.headers["access-control-allow-headers"]
            assert pre.headers["access-control-max-age"] == "300"
            assert "Origin" in pre.headers["vary"]
            bad_method = await client.request("OPTIONS", "/data", [
                ("Origin", "https://app.example"), ("Access-Control-Request-Method", "DELETE")])
            assert bad_method.status == 403 and "access-control-allow-origin" not in bad_method.headers
            bad_header = await client.request("OPTIONS", "/data", [
                ("Origin", "https://app.example"), ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "x-other")])
            assert bad_header.status == 403
            simple = await client.request("GET", "/data", [("Origin", "https://app.example")])
            assert simple.headers["access-control-allow-origin"] == "https://app.example"
            assert simple.headers["access-control-allow-credentials"] == "true"
            assert simple.headers["access-control-expose-headers"] == "X-Total"
            assert simple.headers["vary"] == "Origin"
            other = await client.request("GET", "/data", [("Origin", "https://evil.example")])
            assert other.status == 200 and "access-control-allow-origin" not in other.headers
            assert other.headers["vary"] == "Origin"
            plain_options = await client.request("OPTIONS", "/data")  # no Origin: routing answers
            assert plain_options.status == 204 and plain_options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
            await client.close()
    run(main)


def test_cors_any_origin_is_a_star_without_credentials_and_an_echo_with_them(run):
    async def main():
        async with serving(make_cors_app(allow_origins=["*"])) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/data", [("Origin", "https://x.example")])
            assert reply.headers["access-control-allow-origin"] == "*"
            assert "vary" not in reply.headers and "access-control-allow-credentials" not in reply.headers
            await client.close()
        app = make_cors_app(allow_origins=["*"], allow_methods=["*"], allow_headers=["*"],
                            allow_credentials=True)
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/data", [("Origin", "https://x.example")])
            assert reply.headers["access-control-allow-origin"] == "https://x.example"
            assert reply.headers["vary"] == "Origin"
            pre = await client.request("OPTIONS", "/data", [
                ("Origin", "https://x.example"), ("Access-Control-Request-Method", "PATCH"),
                ("Access-Control-Request-Headers", "x-anything")])
            # With credentials "*" is not a wildcard to browsers: echo what was asked instead.
            assert pre.headers["access-control-allow-origin"] == "https://x.example"
            assert pre.headers["access-control-allow-methods"] == "PATCH"
            assert pre.headers["access-control-allow-headers"] == "x-anything"
            await client.close()
    run(main)


def test_trusted_hosts_refuse_other_hosts_with_400(run):
    async def main():
        app = App()
        app.use(TrustedHosts(["api.example", "127.0.0.1"]))

        @app.get("/")
        async def index(request):
            return "hi"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            assert (await client.request("GET", "/")).status == 200  # RawClient sends 127.0.0.1
            await client.send(b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            refused = await client.response()
            assert refused.status == 400 and refused.body == b"Invalid host header\n"
            await client.send(b"GET / HTTP/1.1\r\nHost: api.example:8443\r\n\r\n")
            assert (await client.response()).status == 200
            await client.close()
    run(main)


def test_security_headers_defaults_opt_ins_and_handler_overrides(run):
    async def main():
        app = App()
        app.use(SecurityHeaders(hsts_max_age_s=31536000, hsts_include_subdomains=True,
                                content_security_policy="default-src 'self'", frame_options=None))

        @app.get("/")
        async def index(request):
            return Response("x", headers={"Referrer-Policy": "no-referrer"})

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/")
            assert reply.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
            assert reply.headers["content-security-policy"] == "default-src 'self'"
            assert reply.headers["x-content-type-options"] == "nosniff"
            assert "x-frame-options" not in reply.headers
            assert [v for k, v in reply.raw_headers if k.lower() == "referrer-policy"] == ["no-referrer"]
            await client.close()
    run(main)


def test_request_id_echoes_valid_ids_and_makes_new_ones(run):
    async def main():
        app = App()
        app.use(RequestID())

        @app.get("/")
        async def index(request):
            return {"id": request.state["request_id"], "same": request.id == request.state["request_id"]}

        @app.get("/fail")
        async def fail(request):
            raise Forbidden()

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            echoed = await client.request("GET", "/", [("X-Request-ID", "abc-123")])
            assert echoed.headers["x-request-id"] == "abc-123"
            assert echoed.body == b'{"id":"abc-123","same":true}'
            made = await client.request("GET", "/", [("X-Request-ID", "bad id\twith tab")])
            assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
            other = await client.request("GET", "/")
            assert other.headers["x-request-id"] != made.headers["x-request-id"]
            failed = await client.request("GET", "/fail", [("X-Request-ID", "req-9")])
            assert failed.status == 403 and failed.headers["x-request-id"] == "req-9"
            await client.close()
    run(main)
