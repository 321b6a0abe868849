"""Middleware without sockets: composition order, hooks, PyLiteFlux's class, built-in checks."""
from __future__ import annotations

import pytest

from cyserve import CORS, BaseMiddleware, Response, TrustedHosts
from cyserve.middleware import after, before, compose


class FakeRequest:
    def __init__(self, method="GET", path="/", headers=None):
        self.method = method
        self.path = path
        self.headers = headers or {}
        self.state = {}


async def endpoint(request):
    request.state.setdefault("log", []).append("handler")
    return Response("ok")


def logging_middleware(label):
    def middleware(handler):
        async def call(request):
            request.state.setdefault("log", []).append(f"{label} in")
            response = await handler(request)
            request.state["log"].append(f"{label} out")
            return response
        return call
    return middleware


def test_compose_runs_the_first_listed_outermost(run):
    request = FakeRequest()
    chain = compose([logging_middleware("a"), logging_middleware("b")], endpoint)
    run(lambda: chain(request))
    assert request.state["log"] == ["a in", "b in", "handler", "b out", "a out"]


def test_compose_refuses_a_middleware_that_returns_no_handler():
    with pytest.raises(TypeError):
        compose([lambda handler: None], endpoint)


def test_before_short_circuits_and_after_always_runs(run):
    seen = []

    def deny(request):
        return ("nope", 403) if request.path == "/secret" else None

    async def record(request, response):
        seen.append(None if response is None else response.status)

    async def boom(request):
        raise RuntimeError("boom")

    chain = compose([after(record), before(deny)], endpoint)
    assert run(lambda: chain(FakeRequest(path="/secret"))).status == 403
    assert run(lambda: chain(FakeRequest(path="/open"))).status == 200
    with pytest.raises(RuntimeError):
        run(lambda: compose([after(record)], boom)(FakeRequest()))
    assert seen == [403, 200, None]


def test_after_may_replace_the_response(run):
    chain = compose([after(lambda request, response: Response("replaced", 202))], endpoint)
    response = run(lambda: chain(FakeRequest()))
    assert response.status == 202 and response.body == b"replaced"


def test_pyliteflux_style_class(run):
    class Auth(BaseMiddleware):
        def process_request(self, request):
            if "authorization" not in request.headers:
                return Response("login first", 401)
            return None

        async def process_response(self, request, response):
            response.headers.append(("X-Checked", "yes"))
            return response

    chain = compose([Auth()], endpoint)
    refused = run(lambda: chain(FakeRequest()))
    assert refused.status == 401 and refused.headers == []  # process_response skipped
    allowed = run(lambda: chain(FakeRequest(headers={"authorization": "x"})))
    assert allowed.status == 200 and allowed.headers == [("X-Checked", "yes")]


def test_process_response_returning_none_keeps_the_response(run):
    class Forgetful(BaseMiddleware):
        def process_response(self, request, response):
            response.headers.append(("X-Seen", "1"))

    response = run(lambda: compose([Forgetful()], endpoint)(FakeRequest()))
    assert response.status == 200 and response.body == b"ok" and response.headers == [("X-Seen", "1")]


def test_trusted_hosts_matching():
    hosts = TrustedHosts(["example.com", "*.example.org", "[::1]"])
    assert hosts.allows("example.com") and hosts.allows("EXAMPLE.com:8080")
    assert hosts.allows("api.example.org") and not hosts.allows("example.org")
    assert hosts.allows("[::1]:8000")
    assert not hosts.allows("evil.com") and not hosts.allows(None)
    assert not hosts.allows("example.com.evil.com")
    with pytest.raises(ValueError):
        TrustedHosts([])


def test_cors_origin_rules():
    cors = CORS(["https://a.example"], allow_origin_regex=r"https://[a-z]+\.b\.example")
    assert cors.allows("https://a.example") and cors.allows("https://x.b.example")
    assert not cors.allows("https://a.example.evil") and not cors.allows("http://a.example")
