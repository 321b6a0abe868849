"""Responses and request helpers over real sockets: response kinds, cookies both ways, url and id,
sync streams off the loop, ``g`` isolation in handlers, their tasks and background calls."""
from __future__ import annotations

import asyncio
import datetime
import json
import threading
import time

from cyserve import App, JSONResponse, Response, StreamResponse
from cyserve.context import current_request, g
from cyserve.response import HTMLResponse, RedirectResponse
from tests.support import RawClient, serving


def make_app() -> App:
    app = App()

    @app.get("/html")
    async def html(request):
        return HTMLResponse("<h1>hi</h1>")

    @app.get("/redirect/{status:int}")
    async def redirect(request):
        return RedirectResponse("/target?a=1 2", request.path_params["status"])

    @app.get("/json-hook")
    async def json_hook(request):
        return JSONResponse({"at": datetime.datetime(2030, 1, 2, 3, 4, 5)}, default=lambda o: o.isoformat())

    @app.get("/empty")
    async def empty(request):
        return Response(status=204)

    @app.get("/login")
    async def login(request):
        response = Response("ok")
        response.set_cookie("sid", 'v a;l"ü%', httponly=True, max_age=3600)
        response.set_cookie("theme", "dark", samesite="strict", path="/")
        response.delete_cookie("old")
        return response

    @app.get("/whoami")
    async def whoami(request):
        return {"cookies": request.cookies, "url": str(request.url), "id": request.id}

    return app


def test_html_redirect_json_hook_and_empty_responses_on_the_wire(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            html = await client.request("GET", "/html")
            assert html.headers["content-type"] == "text/html; charset=utf-8" and html.body == b"<h1>hi</h1>"
            for status in (301, 302, 303, 307, 308):
                moved = await client.request("GET", f"/redirect/{status}")
                assert moved.status == status and moved.body == b""
                assert moved.headers["location"] == "/target?a=1%202"
                assert moved.headers["content-length"] == "0"
            hooked = await client.request("GET", "/json-hook")
            assert hooked.body == b'{"at":"2030-01-02T03:04:05"}'
            empty = await client.request("GET", "/empty")
            assert empty.status == 204 and empty.body == b""
            assert "content-length" not in empty.headers and "transfer-encoding" not in empty.headers
            await client.close()
    run(main)


def test_cookies_set_by_a_response_come_back_in_request_cookies(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            login = await client.request("GET", "/login")
            set_cookies = [v for k, v in login.raw_headers if k.lower() == "set-cookie"]
            assert set_cookies == [
                "sid=v%20a%3Bl%22%C3%BC%25; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax",
                "theme=dark; Path=/; SameSite=Strict",
                "old=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax",
            ]
            # What a browser sends back: name=value of each live cookie, joined by "; ".
            jar = "; ".join(line.split(";")[0] for line in set_cookies[:2])
            me = await client.request("GET", "/whoami", [("Cookie", jar), ("Cookie", 'extra="q"')])
            data = json.loads(me.body)
            assert data["cookies"] == {"sid": 'v a;l"ü%', "theme": "dark", "extra": "q"}
            assert data["url"] == "http://127.0.0.1/whoami"
            again = json.loads((await client.request("GET", "/whoami?x=1")).body)
            assert again["url"] == "http://127.0.0.1/whoami?x=1"
            assert len(data["id"]) == 32 and data["id"] != again["id"]
            await client.close()
    run(main)


def test_sync_stream_runs_off_the_loop_and_sees_g(run):
    threads: list[str] = []

    async def main():
        app = App()
        release = threading.Event()

        @app.get("/slow")
        async def slow(request):
            g.tag = "slow-request"

            def chunks():
                threads.append(threading.current_thread().name)
                yield f"first {g.tag}\n"
                release.wait(5)  # blocks its thread, never the loop
                time.sleep(0.05)
                yield "second\n"
            return StreamResponse(chunks(), content_type="text/plain")

        @app.get("/fast")
        async def fast(request):
            return "fast"

        async with serving(app) as server:
            slow_client = await RawClient.open(server.port)
            await slow_client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(0.1)  # the generator is now blocked in its thread
            fast_client = await RawClient.open(server.port)
            reply = await asyncio.wait_for(fast_client.request("GET", "/fast"), 2)
            assert reply.body == b"fast"
            release.set()
            streamed = await slow_client.response("GET")
            assert streamed.body == b"first slow-request\nsecond\n"
            await slow_client.close()
            await fast_client.close()
    run(main)
    assert threads and threads[0] != threading.main_thread().name


def test_sync_stream_generator_is_closed_when_the_client_leaves(run):
    async def main():
        app = App()
        closed = threading.Event()

        @app.get("/endless")
        async def endless(request):
            def chunks():
                try:
                    while True:
                        yield b"x" * 65536
                finally:
                    closed.set()
            return StreamResponse(chunks())

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
            await client.reader.readexactly(100_000)
            await client.close()
            assert await asyncio.get_running_loop().run_in_executor(None, closed.wait, 5)
    run(main)


def g_app(seen: list) -> App:
    app = App()

    @app.get("/g/{tag}")
    async def handler(request):
        tag = request.path_params["tag"]
        assert "tag" not in g  # a fresh namespace: nothing from an earlier request
        g.tag = tag
        await asyncio.sleep(0.02)

        async def child():
            await asyncio.sleep(0.01)
            return g.tag, current_request() is request

        child_view = await asyncio.create_task(child())

        def sync_later(expected):
            seen.append(("sync", expected, g.tag, threading.current_thread() is threading.main_thread()))

        async def async_later(expected):
            await asyncio.sleep(0.01)
            seen.append(("async", expected, g.tag, current_request() is request))

        request.background(sync_later, tag)
        request.background(async_later, tag)
        return {"tag": g.tag, "child": list(child_view)}

    return app


def test_g_is_isolated_between_concurrent_requests_and_shared_with_their_tasks(run):
    async def main():
        seen: list = []
        async with serving(g_app(seen)) as server:
            clients = [await RawClient.open(server.port) for _ in range(8)]
            for _ in range(2):  # twice on each connection: keep-alive must not carry g over
                replies = await asyncio.gather(*(c.request("GET", f"/g/t{i}") for i, c in enumerate(clients)))
                for i, reply in enumerate(replies):
                    assert reply.body == b'{"tag":"t%d","child":["t%d",true]}' % (i, i)
            for c in clients:
                await c.close()
    run(main)


def test_background_calls_see_the_g_of_their_own_request(run):
    async def main():
        seen: list = []
        async with serving(g_app(seen)) as server:
            clients = [await RawClient.open(server.port) for _ in range(6)]
            await asyncio.gather(*(c.request("GET", f"/g/b{i}") for i, c in enumerate(clients)))
            for _ in range(100):
                if len(seen) == 12:
                    break
                await asyncio.sleep(0.02)
            for c in clients:
                await c.close()
        # Background calls are a feature of the App: none seen is a regression, never a skip.
        assert len(seen) == 12, f"background calls that ran: {seen}"
        for kind, expected, tag, flag in seen:
            assert tag == expected
            if kind == "sync":
                assert flag is False  # ran in a worker thread, not on the loop
            else:
                assert flag is True
    run(main)
