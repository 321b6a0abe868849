"""Errors over real sockets: named HTTP errors, handlers by class and status, JSON bodies, the
debug traceback page and the production 500 that leaks nothing."""
from __future__ import annotations

import logging

import pytest

from cyserve import (Abort, App, BadRequest, Conflict, Gone, HTTPError, InternalServerError, MethodNotAllowed,
                     NotAcceptable, NotFound, NotImplemented_, PayloadTooLarge, ServiceUnavailable,
                     TooManyRequests, Unauthorized, UnprocessableEntity, UnsupportedMediaType)
from cyserve.errors import Forbidden
from tests.support import RawClient, serving

JSON = [("Accept", "application/json")]


class Secret(Exception):
    pass


def make_app(debug: bool = False) -> App:
    app = App(debug=debug)

    @app.get("/unauthorized")
    async def unauthorized(request):
        raise Unauthorized("log in", headers={"WWW-Authenticate": 'Bearer realm="api"'})

    @app.get("/abort")
    async def abort(request):
        raise Abort("teapot-ish", 418)

    @app.get("/crash")
    async def crash(request):
        raise Secret("db password is hunter2 <script>")

    @app.get("/value")
    async def value(request):
        raise ValueError("bad value")

    @app.get("/key")
    async def key(request):
        raise KeyError("k")

    return app


@pytest.mark.parametrize("error,status", [
    (BadRequest, 400), (Unauthorized, 401), (Forbidden, 403), (NotFound, 404), (MethodNotAllowed, 405),
    (NotAcceptable, 406), (Conflict, 409), (Gone, 410), (PayloadTooLarge, 413), (UnsupportedMediaType, 415),
    (UnprocessableEntity, 422), (TooManyRequests, 429), (InternalServerError, 500), (NotImplemented_, 501),
    (ServiceUnavailable, 503)])
def test_named_errors_carry_their_status(error, status):
    exc = error("why", {"X-A": "1"})
    assert isinstance(exc, HTTPError) and exc.status == status
    assert exc.detail == "why" and exc.headers == [("X-A", "1")]


def test_abort_is_blazeios_spelling_and_status_must_be_an_error():
    assert Abort("go away").status == 403
    assert Abort("slow down", 429, {"Retry-After": "1"}).headers == [("Retry-After", "1")]
    with pytest.raises(ValueError):
        Abort("fine", 200)


def test_http_errors_as_text_or_json_with_their_headers(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            text = await client.request("GET", "/unauthorized")
            assert text.status == 401 and text.body == b"log in\n"
            assert text.headers["www-authenticate"] == 'Bearer realm="api"'
            js = await client.request("GET", "/unauthorized", JSON)
            assert js.headers["content-type"] == "application/json"
            assert js.body == b'{"detail":"log in","status":401}'
            abort = await client.request("GET", "/abort")
            assert abort.status == 418 and abort.body == b"teapot-ish\n"
            missing = await client.request("GET", "/missing", JSON)
            assert missing.body == b'{"detail":"Not Found","status":404}'
            await client.close()
    run(main)


def test_production_500_leaks_nothing_and_logs_the_error(run, caplog):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            text = await client.request("GET", "/crash")
            assert text.status == 500 and text.body == b"Internal Server Error\n"
            js = await client.request("GET", "/crash", JSON)
            assert js.body == b'{"detail":"Internal Server Error","status":500}'
            await client.close()
    with caplog.at_level(logging.ERROR, logger="cyserve.app"):
        run(main)
    logged = [r for r in caplog.records if r.name == "cyserve.app"]
    assert logged and "GET /crash" in logged[0].getMessage()
    assert logged[0].exc_info and logged[0].exc_info[0] is Secret


def test_debug_mode_answers_with_an_escaped_traceback_page(run, caplog):
    async def main():
        async with serving(make_app(debug=True)) as server:
            client = await RawClient.open(server.port)
            page = await client.request("GET", "/crash")
            assert page.status == 500 and page.headers["content-type"] == "text/html; charset=utf-8"
            assert b"Secret: db password is hunter2 &lt;script&gt;" in page.body
            assert b"Traceback (most recent call last)" in page.body and b"<script>" not in page.body
            js = await client.request("GET", "/crash", JSON)
            assert js.status == 500 and b'"traceback":["Traceback' in js.body
            await client.close()
    with caplog.at_level(logging.CRITICAL):
        run(main)


def test_exception_handlers_by_class_status_and_mro(run, caplog):
    async def main():
        app = make_app()

        @app.exception_handler(ValueError)
        async def on_value(request, exc):
            return {"error": str(exc)}, 422

        @app.exception_handler(LookupError)  # KeyError is a LookupError
        def on_lookup(request, exc):
            return "lookup failed", 400

        @app.exception_handler(404)
        async def on_404(request, exc):
            return f"no page at {request.path}", 404

        @app.exception_handler(Exception)
        async def on_anything(request, exc):
            return "something broke", 500

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            value = await client.request("GET", "/value")
            assert value.status == 422 and value.body == b'{"error":"bad value"}'
            key = await client.request("GET", "/key")
            assert key.status == 400 and key.body == b"lookup failed"
            missing = await client.request("GET", "/nowhere")
            assert missing.status == 404 and missing.body == b"no page at /nowhere"
            crash = await client.request("GET", "/crash")
            assert crash.status == 500 and crash.body == b"something broke"
            # An Exception handler is for crashes: HTTP errors keep their own pages.
            unauthorized = await client.request("GET", "/unauthorized")
            assert unauthorized.status == 401 and unauthorized.body == b"log in\n"
            await client.close()
    run(main)


def test_a_failing_exception_handler_is_logged_and_answered_500(run, caplog):
    async def main():
        app = make_app()

        @app.exception_handler(ValueError)
        async def broken(request, exc):
            raise RuntimeError("handler bug")

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/value")
            assert reply.status == 500 and reply.body == b"Internal Server Error\n"
            await client.close()
    with caplog.at_level(logging.ERROR, logger="cyserve.app"):
        run(main)
    assert any("exception handler" in r.getMessage() for r in caplog.records)
