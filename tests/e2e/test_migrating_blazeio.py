"""docs/migrating.md, the Blazeio table: one test per row, over real sockets."""
from __future__ import annotations

import asyncio
import contextlib
import zlib

import h11
import pytest

from cyserve import Abort, App, current_request
from cyserve.compat import Deliver
from tests.support import RawClient, exchange, fetch, serving


def test_pull_streams_the_body_of_any_method_and_keeps_the_connection_in_step(run):
    # Blazeio never read GET/DELETE bodies, so their bytes were parsed as the next request.
    async def main():
        app = App()

        @app.route("/count", ("GET", "POST"))
        async def count(r):
            sizes = [len(chunk) async for chunk in r.pull()]
            return {"bytes": sum(sizes), "chunks": len(sizes) > 0}

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5;ext=1\r\nhello\r\n")
            await asyncio.sleep(0.05)
            await client.send(b"6\r\n world\r\n0\r\nTrailer: t\r\n\r\n")
            reply = await client.response("POST")
            assert reply.body == b'{"bytes":11,"chunks":true}'
            # A GET with a body, then a pipelined request: the body is the GET's, not a request.
            await client.send(b"GET /count HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\n\r\n"
                              b"GET /x HTTP/1.1\r\n\r\n"
                              b"GET /count HTTP/1.1\r\nHost: x\r\n\r\n")
            first = await client.response("GET")
            second = await client.response("GET")
            assert first.body == b'{"bytes":19,"chunks":true}'
            assert second.body == b'{"bytes":0,"chunks":false}'
            await client.close()
    run(main)


def test_prepare_and_write_stream_a_chunked_response_on_a_kept_connection(run):
    async def main():
        app = App()

        @app.get("/s")
        async def stream(r):
            await r.prepare({"Content-type": "text/plain", "X-Count": 3}, 201)
            for i in range(3):
                await r.write(f"part{i}\n")

        @app.get("/cl")
        async def sized(r):
            await r.prepare({"Content-length": 5}, 200)
            await r.write(b"hello")
            await r.eof()

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/s")
            assert reply.status == 201 and reply.body == b"part0\npart1\npart2\n"
            assert reply.headers["transfer-encoding"] == "chunked"
            assert reply.headers["x-count"] == "3" and "date" in reply.headers
            sized_reply = await client.request("GET", "/cl")
            assert sized_reply.headers["content-length"] == "5" and sized_reply.body == b"hello"
            head = await client.request("HEAD", "/s")  # Blazeio raised Eof; here writes are dropped
            assert head.status == 201 and head.body == b""
            assert (await client.request("GET", "/s")).body == b"part0\npart1\npart2\n"
            await client.close()
            # HTTP/1.0 has no chunked coding: the body ends with the connection (RFC 9112 §6.3).
            raw = await exchange(server.port, b"GET /s HTTP/1.0\r\n\r\n")
            assert raw.startswith(b"HTTP/1.1 201") and raw.endswith(b"\r\n\r\npart0\npart1\npart2\n")
    run(main)


def test_prepare_write_waits_for_a_slow_reader(run):
    total = 48 * 1024 * 1024
    chunk = b"x" * 65536

    async def main():
        app = App()
        written = 0

        @app.get("/big")
        async def big(r):
            nonlocal written
            await r.prepare({"Content-type": "application/octet-stream", "Content-length": total})
            while written < total:
                await r.write(chunk)
                written += len(chunk)

        async with serving(app) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                await asyncio.sleep(0.5)
                # Socket buffers and the write high water mark hold what was written: not all.
                assert written < total // 2
                received = 0
                head = await reader.readuntil(b"\r\n\r\n")
                assert b"Content-Length: %d" % total in head
                while received < total:
                    received += len(await reader.read(1 << 20))
                assert received == total and written == total
                # The response ended cleanly: the connection serves the next request.
                writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
    run(main)


def test_prepare_with_content_encoding_compresses_the_whole_body_once(run):
    async def main():
        app = App()

        @app.get("/z")
        async def zipped(r):
            await r.prepare({"Content-Type": "text/plain", "Content-Encoding": "gzip",
                             "Content-Length": 999})
            for word in ("alpha ", "beta ", "gamma"):
                await r.write(word)

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/z")
            assert reply.headers["content-encoding"] == "gzip" and "content-length" not in reply.headers
            # One gzip member (Blazeio sent one per write), complete with its trailer.
            decoder = zlib.decompressobj(31)
            assert decoder.decompress(reply.body) == b"alpha beta gamma" and decoder.eof
            assert decoder.unused_data == b""
    run(main)


def test_prepare_event_stream_writes_one_event_per_write(run):
    async def main():
        app = App()

        @app.get("/events")
        async def events(r):
            await r.prepare({"Content-type": "text/event-stream"})
            await r.write({"n": 1})
            await r.write("two\nlines")

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/events")
            assert reply.headers["content-type"] == "text/event-stream"
            assert reply.body == b'data: {"n":1}\n\ndata: two\ndata: lines\n\n'
    run(main)


def test_prepared_response_is_what_hooks_see_and_errors_after_it_close(run):
    async def main():
        app = App()
        seen = []

        @app.after
        def record(request, response):  # None: no response can follow a half-sent one
            seen.append((request.path, None if response is None else response.status))

        @app.get("/ok")
        async def ok(r):
            await r.prepare({"Content-type": "text/plain"}, 202)
            await r.write(b"fine")

        @app.get("/broken")
        async def broken(r):
            await r.prepare({"Content-type": "text/plain"}, 200)
            await r.write(b"half")
            raise RuntimeError("after the head")

        @app.get("/bad-length")
        async def bad_length(r):
            await r.prepare({"Content-length": "+5"})  # Blazeio's int() took it

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/ok")
            assert (reply.status, reply.body) == (202, b"fine")
            assert ("/ok", 202) in seen
            with pytest.raises((ConnectionError, h11.RemoteProtocolError)):
                await fetch(server.port, "GET", "/broken")  # cut short, never a clean end
            assert ("/broken", None) in seen
            assert (await fetch(server.port, "GET", "/bad-length")).status == 500
    run(main)


def test_deliver_builds_responses_and_path_redirects(run):
    async def main():
        app = App()

        @app.get("/page")
        async def page(r):
            return Deliver.text_html(r, "<p>hi</p>", 201)

        @app.get("/moved")
        async def moved(r):
            return Deliver.text("see /page", path="/page")

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/page")
            assert (reply.status, reply.headers["content-type"]) == (201, "text/html; charset=utf-8")
            moved_reply = await fetch(server.port, "GET", "/moved")
            assert moved_reply.status == 302 and moved_reply.headers["location"] == "/page"
    run(main)


def test_abort_defaults_to_403_and_carries_headers(run):
    async def main():
        app = App()

        @app.get("/a")
        async def guarded(r):
            raise Abort("no entry", headers={"X-Why": "test"})

        async with serving(app) as server:
            reply = await fetch(server.port, "GET", "/a")
            assert reply.status == 403 and reply.body == b"no entry\n"
            assert reply.headers["x-why"] == "test"
    run(main)


def test_attach_names_routes_after_methods_with_dot_and_route_override(run):
    async def main():
        app = App()

        class Site:
            async def _favicon__dot__ico(self, r):
                return Deliver.image_x_icon(b"ico")

            async def _api_user_id(self, r, route="/api/user_id"):
                return {"path": r.path}

            async def _api_echo(self, r):
                return {"method": r.method}

        app.attach(Site)
        async with serving(app) as server:
            assert (await fetch(server.port, "GET", "/favicon.ico")).body == b"ico"
            assert (await fetch(server.port, "GET", "/api/user_id")).body == b'{"path":"/api/user_id"}'
            assert (await fetch(server.port, "DELETE", "/api/echo")).body == b'{"method":"DELETE"}'
    run(main)


def test_attach_hooks_become_before_after_and_fallback(run):
    async def main():
        app = App()
        finished = []

        class Hooks:
            async def before_middleware(self, r):
                if r.headers.get("x-key") != "k":
                    raise Abort("key please", 401)

            def after_middleware(self, r):
                finished.append(r.path)

            async def handle_all_middleware(self, r):
                return Deliver.text(f"fallback for {r.path}")

            async def _hello(self, r):
                return "hello"

        app.attach(Hooks())
        async with serving(app) as server:
            assert (await fetch(server.port, "GET", "/hello")).status == 401
            assert (await fetch(server.port, "GET", "/hello", [("X-Key", "k")])).body == b"hello"
            other = await fetch(server.port, "GET", "/nowhere", [("X-Key", "k")])
            assert other.body == b"fallback for /nowhere"
            assert finished == ["/hello", "/hello", "/nowhere"]
    run(main)


def test_store_is_request_state_by_item_and_attribute(run):
    async def main():
        app = App()

        @app.before
        def remember(r):
            r.state["user"] = "ada"

        @app.get("/who")
        async def who(r):
            return {"item": r.state["user"], "attribute": r.state.user}

        async with serving(app) as server:
            assert (await fetch(server.port, "GET", "/who")).body == b'{"item":"ada","attribute":"ada"}'
    run(main)


def test_context_r_is_current_request(run):
    async def main():
        app = App()

        def helper():  # deep in the call stack, without r (Blazeio's Context._r())
            return current_request().path

        @app.get("/deep")
        async def deep(r):
            await asyncio.sleep(0)
            return helper()

        async with serving(app) as server:
            assert (await fetch(server.port, "GET", "/deep")).body == b"/deep"
    run(main)


def test_method_decorators_share_a_path_and_405_names_allow(run):
    # Blazeio: route.get and route.post on one path broke the second; no route.delete; no Allow.
    async def main():
        app = App()

        @app.get("/item")
        async def read(r):
            return "read"

        @app.post("/item")
        async def create(r):
            return "created"

        @app.delete("/item")
        async def remove(r):
            return "removed"

        async with serving(app) as server:
            assert (await fetch(server.port, "POST", "/item", body=b"x")).body == b"created"
            assert (await fetch(server.port, "DELETE", "/item")).body == b"removed"
            refused = await fetch(server.port, "PUT", "/item", body=b"x")
            assert refused.status == 405
            assert refused.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, POST"
    run(main)
