"""app.static() mounts StaticFiles; HEAD on a produced body closes the producer unread."""
from __future__ import annotations

import asyncio

from cyserve import App, SSEResponse, StreamResponse
from tests.support import RawClient, serving


def test_app_static_serves_files_index_and_redirects_the_bare_prefix(run, tmp_path):
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "app.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("no")

    async def main():
        app = App()
        app.static("/assets", str(tmp_path))
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            js = await client.request("GET", "/assets/app.js")
            assert js.status == 200 and js.body == b"console.log(1)" and "etag" in js.headers
            index = await client.request("GET", "/assets/")
            assert index.status == 200 and index.body == b"<h1>home</h1>"
            bare = await client.request("GET", "/assets")
            assert bare.status in (301, 307, 308) and bare.headers["location"].endswith("/assets/")
            escape = await client.request("GET", "/assets/../secret.txt")
            assert escape.status == 404
            head = await client.request("HEAD", "/assets/app.js")
            assert head.status == 200 and head.body == b"" and head.headers["content-length"] == "14"
            await client.close()
    run(main)


def test_head_on_an_endless_stream_closes_the_producer_unread(run):
    async def main():
        started = []
        producers = []
        app = App()

        async def forever(item):
            while True:
                started.append(1)
                yield item
                await asyncio.sleep(0.01)

        @app.get("/events")
        async def events(request):
            producers.append(forever({"data": "tick"}))
            return SSEResponse(producers[-1])

        @app.get("/stream")
        async def stream(request):
            producers.append(forever(b"x"))
            return StreamResponse(producers[-1], content_type="text/plain")

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            for target in ("/events", "/stream"):
                reply = await client.request("HEAD", target)
                assert reply.status == 200 and reply.body == b""
                # Closed without ever running: an unstarted generator's frame is dropped.
                assert producers[-1].ag_frame is None
            assert not started, "a producer ran for a HEAD request"
            after = await client.request("HEAD", "/events")
            assert after.headers["content-type"] == "text/event-stream"
            await client.close()
    run(main)
